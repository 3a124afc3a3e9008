"""The Kong declarative files of tests/fixtures/kong/, pointed at a test's upstream."""

from __future__ import annotations

from pathlib import Path

KONG_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "kong"


def kong_file(name: str, upstream_url: str) -> str:
    """The text of fixture ``name`` with its upstream (``upstream.test:8081``) replaced by
    ``upstream_url``'s host and port (``http://127.0.0.1:PORT``)."""
    host, _, port = upstream_url.removeprefix("http://").partition(":")
    return (KONG_FIXTURES / name).read_text().replace("upstream.test", host) \
        .replace("8081", port)
