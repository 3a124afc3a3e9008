"""my-plugin: set a response header from a third-party JSON service (Kong's guide plugin)."""

import logging
from dataclasses import dataclass

from gateway.pdk import (
    BadAnswer,
    CallFailed,
    Exchange,
    Filter,
    Service,
    choice,
    header_name,
    http_url,
    setting,
)

log = logging.getLogger("my_plugin")


@dataclass(frozen=True)
class MyPluginConfig:  # schema.lua
    url: str = setting(parse=http_url, required=True, doc="my-plugin: the 3rd party to call.")
    response_header_name: str = setting(parse=header_name, default="X-MyPlugin",
                                        doc="my-plugin: header set to the answer's url.")
    on_error: str = setting(parse=choice("fail", "continue"), default="fail",
                            doc="my-plugin: fail answers 500; continue logs and carries on.")


class MyPluginHandler(Filter):  # handler.lua
    NAME = "my-plugin"
    PRIORITY = 1000
    VERSION = "0.0.1"
    Config = MyPluginConfig

    def __init__(self, config, settings):
        super().__init__(config, settings)
        self.httpc = Service(self.NAME, settings)  # resty.http, pooled per worker

    def on_response(self, ex: Exchange) -> None:
        try:
            body_table = self.httpc.get_json(self.config.url)
        except CallFailed as err:
            return self.error(ex, f"Error when trying to access 3rd party service: {err}")
        except BadAnswer as err:
            return self.error(ex, f"Error when decoding 3rd party service response: {err}")
        url = body_table.get("url") if isinstance(body_table, dict) else None
        if not isinstance(url, str):
            return self.error(ex, "Error when decoding 3rd party service response: no url")
        ex.headers[self.config.response_header_name] = url

    def error(self, ex: Exchange, message: str) -> None:
        if self.config.on_error == "fail":
            ex.error(500, message, {"Content-Type": "text/html"})
        else:
            log.warning("request %s: %s", ex.request_id, message)
