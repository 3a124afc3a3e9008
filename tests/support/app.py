"""The gateway in this process, built the production way (the kit's ``in_process``)."""

from __future__ import annotations

from typing import Any

from werkzeug.test import Client, TestResponse

from gateway.server.app import Gateway
from gateway.testing import in_process

__all__ = ["gateway_of", "get", "in_process"]


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
