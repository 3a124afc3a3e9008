"""my-plugin with the gateway's testing kit: a mock third party, the gateway in-process."""

import pytest
from my_plugin.handler import MyPluginHandler

from gateway.pdk import ConfigError
from gateway.testing import assert_header, assert_not_called

ACCESS = b"Error when trying to access 3rd party service: "
DECODE = b"Error when decoding 3rd party service response: "


@pytest.fixture
def gateway(gateway_client, mock_service):
    """The gateway with my-plugin calling ``mock_service`` at /anything (or ``path``)."""
    def make(path="/anything", **settings):
        return gateway_client([MyPluginHandler],
                              {"GATEWAY_MY_PLUGIN_URL": mock_service.url + path, **settings})
    return make


def test_the_header_is_the_third_partys_url(gateway, mock_service):
    mock_service.route("/anything", json={"url": "http://third.example/anything"})
    response = gateway().get("/orders")
    assert response.status_code == 200
    assert_header(response, "X-MyPlugin", "http://third.example/anything")
    assert len(mock_service.calls("/anything")) == 1


def test_the_header_name_is_a_setting(gateway, mock_service):
    mock_service.route("/anything", json={"url": "u"})
    response = gateway(GATEWAY_MY_PLUGIN_RESPONSE_HEADER_NAME="X-Url").get("/")
    assert_header(response, "X-Url", "u")
    assert_header(response, "X-MyPlugin", None)


@pytest.mark.parametrize("route, message", [
    ({"action": "drop"}, ACCESS),
    ({"status": 503, "json": {}}, ACCESS + b"status 503"),
    ({"body": b"<html>"}, DECODE),
    ({"json": ["no", "url"]}, DECODE + b"no url"),
])
def test_failures_answer_the_guides_500_in_html(gateway, mock_service, route, message):
    mock_service.route("/anything", **route)
    response = gateway().get("/")
    assert response.status_code == 500
    assert response.content_type.startswith("text/html")
    assert message in response.data


def test_continue_passes_the_upstream_answer_on(gateway, mock_service, caplog):
    mock_service.route("/anything", action="drop")
    client = gateway(GATEWAY_MY_PLUGIN_ON_ERROR="continue")
    response = client.get("/orders")
    assert response.status_code == 200
    assert response.json["path"] == "/orders"  # the kit's echoing upstream
    assert_header(response, "X-MyPlugin", None)
    assert "Error when trying to access 3rd party service" in caplog.text


def test_the_url_is_required(gateway_client):
    with pytest.raises(ConfigError, match=r"^GATEWAY_MY_PLUGIN_URL is required"):
        gateway_client([MyPluginHandler], {})


def test_a_bad_url_stops_the_start_naming_the_variable(gateway_client, mock_service):
    with pytest.raises(ConfigError, match=r"^GATEWAY_MY_PLUGIN_URL='ftp://x'"):
        gateway_client([MyPluginHandler], {"GATEWAY_MY_PLUGIN_URL": "ftp://x"})
    assert_not_called(mock_service)
