"""The gateway in this process, built the production way (the kit's ``in_process``)."""

from __future__ import annotations

from werkzeug.test import Client

from gateway.proxy.app import Gateway
from gateway.testing import in_process

__all__ = ["gateway_of", "in_process"]


def gateway_of(client: Client) -> Gateway:
    """The Gateway behind a client from :func:`in_process` (under ProxyFix, if any)."""
    app = client.application
    return getattr(app, "app", app)
