"""The generated parts of the documentation site (docs/, built by MkDocs): the settings
table of the configuration page, the Kong compatibility matrix, the table of what Kong
accepts and the loader refuses (services-and-routes.md), and the home page (the README,
its links made relative to docs/). ``python -m gateway docs`` (``make docs``)
writes them; tests compare the committed pages with :func:`generated`, so none drifts."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.config import ServerSettings, Settings, describe

if TYPE_CHECKING:
    from gateway.filters.base import Filter

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
KONG_COMPATIBILITY = DOCS / "kong-compatibility.md"
HOME = DOCS / "index.md"
SERVICES_AND_ROUTES = DOCS / "services-and-routes.md"


def settings_table(custom: Sequence[type[Filter]] = ()) -> str:
    """Every GATEWAY_* variable with its default and meaning, as a Markdown table: the
    gateway's, the built-in filters', then the filters ``custom`` (not built in)."""
    from gateway.filters import REGISTRY, scope

    tables = [(Settings, None), (ServerSettings, None),
              *((f.Config, None) for f in REGISTRY.values()),
              *((f.Config, scope(f)) for f in custom if scope(f) is not None)]
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for cls, name in tables:
        rows += [f"| `{env}` | `{default}` | {doc} |" if default else f"| `{env}` | | {doc} |"
                 for env, default, doc in describe(cls, name)]
    return "\n".join(rows)


def between_markers(page: str, name: str, text: str) -> str:
    """``page`` with the block between its ``<!-- name:start -->`` and ``<!-- name:end -->``
    markers replaced by ``text``: a generated part of a page otherwise written by hand."""
    block = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
    return block.sub(lambda m: m.group(1) + text + "\n" + m.group(2), page)


def with_settings_table(page: str) -> str:
    """``page`` with the block between the settings markers replaced by the current table."""
    return between_markers(page, "settings", settings_table())


def with_refused_table(page: str) -> str:
    """``page`` with the block between the refused markers replaced by the current table of
    what Kong accepts and the loader refuses (:func:`gateway.routing.compat.refused_table`)."""
    from gateway.routing.compat import refused_table

    return between_markers(page, "refused", refused_table())


def home_page(readme: str) -> str:
    """The site's home page: the README, whose links into docs/ become the site's own."""
    return readme.replace("](docs/", "](")


def generated() -> dict[Path, str]:
    """Each generated page and the text it should hold now."""
    from gateway.routing.compat import matrix

    return {CONFIGURATION: with_settings_table(CONFIGURATION.read_text()),
            KONG_COMPATIBILITY: matrix(), HOME: home_page(README.read_text()),
            SERVICES_AND_ROUTES: with_refused_table(SERVICES_AND_ROUTES.read_text())}


def write() -> list[Path]:
    """Write every generated page that changed; the paths written."""
    written = []
    for path, text in generated().items():
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            written.append(path)
    return written
