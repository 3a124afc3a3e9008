"""Command line: ``python -m gateway check`` validates the environment and the declarative
file; ``settings`` prints the settings table in Markdown; ``readme`` rewrites that table in
README.md."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from gateway.config import ConfigError, ServerSettings, Settings, describe


def settings_table() -> str:
    """Every GATEWAY_* variable with its default and meaning, as a Markdown table."""
    from gateway.filters import REGISTRY

    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for cls in (Settings, ServerSettings, *(f.Config for f in REGISTRY.values())):
        rows += [f"| `{env}` | `{default}` | {doc} |" if default else f"| `{env}` | | {doc} |"
                 for env, default, doc in describe(cls)]
    return "\n".join(rows)


README = Path(__file__).resolve().parent.parent / "README.md"
_TABLE = re.compile(r"(<!-- settings:start -->\n).*?(<!-- settings:end -->)", re.S)


def readme_with_table(readme: str) -> str:
    """``readme`` with the block between the settings markers replaced by the current table."""
    return _TABLE.sub(lambda m: m.group(1) + settings_table() + "\n" + m.group(2), readme)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "check":
        from gateway.proxy.app import create_app

        try:
            create_app()
        except ConfigError as exc:
            print(f"gateway: configuration error: {exc}", file=sys.stderr)
            return 2
        return 0
    if command == "settings":
        print(settings_table())
        return 0
    if command == "readme":
        README.write_text(readme_with_table(README.read_text()))
        return 0
    print("usage: python -m gateway check|settings|readme", file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
