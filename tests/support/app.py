"""The gateway in this process, built the production way (``create_app``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from werkzeug.test import Client, TestResponse

from gateway.filters.base import Filter
from gateway.proxy.app import Gateway, create_app


def in_process(environ: dict[str, str], extra_filters: Sequence[Filter] = (),
               use_cookies: bool = True) -> Client:
    """The app ``create_app`` builds from ``environ`` (unknown variables refused, ProxyFix
    when trusted proxies are set), plus ``extra_filters``, behind werkzeug's test Client."""
    return Client(create_app(environ, extra_filters), use_cookies=use_cookies)


def gateway_of(client: Client) -> Gateway:
    """The Gateway behind a client from :func:`in_process` (under ProxyFix, if any)."""
    app = client.application
    return getattr(app, "app", app)


def get(client: Client, path: str, **kwargs: Any) -> TestResponse:
    """A GET through ``client`` whose response is read and closed, so the request's log
    phase runs and it no longer counts as in flight."""
    response = client.get(path, **kwargs)
    response.get_data()
    response.close()
    return response
