"""Command line: ``python -m gateway check`` validates the environment; ``settings`` prints
the settings table in Markdown; ``readme`` rewrites that table in README.md."""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

from gateway.config import ConfigError, ServerSettings, Settings, describe, load

USAGE = "usage: python -m gateway check|settings|readme  (python -m gateway check --help)"
CHECK_HELP = """usage: python -m gateway check

Validates every GATEWAY_* variable in this environment as `gunicorn -c gunicorn.conf.py`
reads them at start or reload: the server's (GATEWAY_BIND, GATEWAY_WORKERS, timeouts),
the proxy's and the enabled filters'. Prints "configuration OK" and exits 0, or prints
one line naming the bad variable and exits 2. Warns about settings of filters that are
not enabled. Run it in the gateway's environment before a reload."""


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


def check(args: list[str]) -> int:
    """``python -m gateway check``: what gunicorn.conf.py and every worker will load."""
    if args:
        wants_help = args == ["-h"] or args == ["--help"]
        print(CHECK_HELP, file=sys.stdout if wants_help else sys.stderr)
        return 0 if wants_help else 64
    from gateway.proxy.app import create_app

    logging.basicConfig(format="gateway: %(levelname)s: %(message)s")
    try:
        load(ServerSettings, os.environ)
        create_app()
    except ConfigError as exc:
        print(f"gateway: configuration error: {exc}", file=sys.stderr)
        return 2
    print("configuration OK")
    return 0


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "check":
        return check(argv[1:])
    if command == "settings":
        print(settings_table())
        return 0
    if command == "readme":
        README.write_text(readme_with_table(README.read_text()))
        return 0
    if command in ("-h", "--help"):
        print(USAGE)
        return 0
    print(USAGE, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
