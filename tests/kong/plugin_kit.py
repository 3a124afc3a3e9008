"""What the plugin specs' translations share: the gateway in process from a Kong file, one
request through it, and what httpbin's /anything (Kong's mock_upstream) saw."""

from __future__ import annotations

import json
from typing import Any

from werkzeug.test import Client, TestResponse

from tests.support.app import in_process


def kong_client(kong_yml: str, **env: str) -> Client:
    """The gateway built the production way from a Kong declarative file."""
    return in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": kong_yml,
                       "GATEWAY_ACCESS_LOG": "off", **env})


def send(client: Client, method: str, target: str, host: str,
         headers: dict[str, str] | None = None, **kwargs: Any) -> TestResponse:
    """One request to ``host`` (the spec's route) whose response is read and closed."""
    response = client.open(target, method=method, headers={"Host": host, **(headers or {})},
                           **kwargs)
    response.get_data()
    response.close()
    return response


def seen(response: TestResponse) -> dict[str, Any]:
    """httpbin's echo of the request it got, header names lower-cased."""
    assert response.status_code == 200, response.get_data(as_text=True)
    echo = json.loads(response.get_data())
    echo["headers"] = {name.lower(): value for name, value in echo["headers"].items()}
    return echo
