"""Filters written only against gateway.pdk, as a user outside the gateway writes them;
loaded by the tests as ``tests.support.pdk_filters:Class`` and through an entry point."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.pdk import Exchange, Filter, Service, ServiceOptions, number, setting, text


@dataclass(frozen=True)
class TeapotConfig:
    header: str = setting(default="X-Teapot", doc="teapot: header added to every answer.")
    max_body: int = setting(parse=number(int, 0), default="16", doc="teapot: largest body read.")
    lookup_url: str | None = setting(doc="teapot: a JSON service whose url field goes upstream.")
    lookup_timeout: float = setting(parse=number(float), default="1",
                                    doc="teapot: seconds for the lookup.")
    token: str | None = setting(doc="teapot: secret header sent to the service.", secret=True)


class Teapot(Filter):
    """?teapot answers 418 at once; ?read reads the body (size upstream as X-Body-Size);
    ?lookup calls lookup_url before the upstream (X-Looked-Up); every answer gets a header."""

    NAME = "teapot"
    PRIORITY = 1500  # before key-auth (1250)
    VERSION = "1.0.0"
    Config = TeapotConfig

    def __init__(self, config: TeapotConfig, settings) -> None:
        super().__init__(config, settings)
        options = ServiceOptions(timeout=config.lookup_timeout,
                                 headers={"X-Token": config.token} if config.token else {})
        self.service = Service(self.NAME, settings, options)

    def on_request(self, ex: Exchange) -> None:
        args = ex.request.args
        if "teapot" in args:
            ex.error(418, "I'm a teapot")
        if "read" in args:
            ex.upstream_headers["X-Body-Size"] = str(len(ex.read_body(self.config.max_body)))
        if "lookup" in args:
            ex.ctx[self.NAME] = self.service.start("GET", self.config.lookup_url)

    def on_response(self, ex: Exchange) -> None:
        ex.headers[self.config.header] = "teapot"
        ex.headers["X-Order"] = "teapot,"
        pending = ex.ctx.pop(self.NAME, None)
        if pending is not None:
            result = pending.result()
            ex.headers["X-Looked-Up"] = result.value["url"] if result.ok else result.outcome


@dataclass(frozen=True)
class LateConfig:
    pass


class Late(Filter):
    """Runs after every built-in filter; appends to the header Teapot sets."""

    NAME = "late"
    PRIORITY = 1
    VERSION = "1.0.0"
    Config = LateConfig

    def on_response(self, ex: Exchange) -> None:
        ex.headers["X-Order"] = ex.headers.get("X-Order", "") + "late"


class NoPriority(Filter):
    NAME = "no-priority"
    VERSION = "1.0.0"
    Config = LateConfig


class NoConfig(Filter):
    NAME = "no-config"
    PRIORITY = 5
    VERSION = "1.0.0"


@dataclass(frozen=True)
class SpelledConfig:
    value: str = setting("GATEWAY_SOMETHING_ELSE", text, "x", "spelled: a variable of its own.")


class Spelled(Filter):
    NAME = "spelled"
    PRIORITY = 5
    VERSION = "1.0.0"
    Config = SpelledConfig


class NotAFilter:
    NAME, PRIORITY, VERSION, Config = "not-a-filter", 5, "1.0.0", LateConfig


@dataclass(frozen=True)
class ShoutConfig:
    max_body: int = setting(parse=number(int, 1), default="1024",
                            doc="shout: largest body upper-cased.")


class Shout(Filter):
    """Upper-cases the whole response body through the PDK's transform_body (PDK 1.1)."""

    NAME = "shout"
    PRIORITY = 700
    VERSION = "1.0.0"
    Config = ShoutConfig

    def on_response(self, ex: Exchange) -> None:
        ex.transform_body(bytes.upper, self.config.max_body)
