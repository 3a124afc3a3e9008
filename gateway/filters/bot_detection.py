"""bot-detection: refuse requests whose User-Agent is a bot's (Kong's plugin of that name).

Kong's order: a User-Agent matching an ``allow`` expression passes; else one
matching a ``deny`` expression, or Kong's built-in list of bots
(:mod:`gateway.filters.bot_rules`), is answered 403 ``Forbidden``. A request
without a User-Agent passes. Expressions are searched anywhere in the value
(``re.search``, as Kong's ``ngx.re.find``), after the value is stripped of
surrounding whitespace. Verdicts are kept per User-Agent in a bounded cache
(10,000 entries as Kong's, the oldest dropped first), so a repeated User-Agent
costs one dictionary look-up. Kong answers 400 to two User-Agent headers; WSGI
joins repeated headers into one value, so here they are examined together.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from dataclasses import dataclass

from gateway.config import Settings, setting
from gateway.filters.base import Filter
from gateway.filters.bot_rules import BOTS
from gateway.proxy.exchange import Exchange

#: Distinct User-Agents whose verdict is kept per worker (Kong's UA_CACHE_SIZE).
CACHE_SIZE = 10_000
#: Kong's kong.response.error(403) message.
FORBIDDEN = "Forbidden"


def regexes(raw: str) -> tuple[re.Pattern[str], ...]:
    """A JSON array of regular expressions (``["curl/", "^Wget"]``), or one expression."""
    items = json.loads(raw) if raw.lstrip().startswith("[") else [raw]
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ValueError("must be a JSON array of regular expressions, or one expression")
    compiled = []
    for item in items:
        try:
            compiled.append(re.compile(item))
        except re.error:
            raise ValueError(f"not a valid regex: {item}") from None  # Kong's words
    return tuple(compiled)


@dataclass(frozen=True)
class BotDetectionConfig:
    allow: tuple[re.Pattern[str], ...] = setting(
        "GATEWAY_BOT_DETECTION_ALLOW", regexes, "[]",
        "bot-detection: User-Agent regular expressions let through even if they look like "
        "bots, as a JSON array (`[\"^MyMonitor/\"]`) or one expression.")
    deny: tuple[re.Pattern[str], ...] = setting(
        "GATEWAY_BOT_DETECTION_DENY", regexes, "[]",
        "bot-detection: User-Agent regular expressions refused (403) besides Kong's list of "
        "bots, as a JSON array or one expression.")


class BotDetection(Filter):
    """Answers 403 to denied and known bot User-Agents."""

    NAME = "bot-detection"
    PRIORITY = 2500
    VERSION = "1.0.0"
    Config = BotDetectionConfig

    def __init__(self, config: BotDetectionConfig, settings: Settings) -> None:
        super().__init__(config, settings)
        self.bots = tuple(re.compile(rule) for rule in BOTS)
        #: User-Agent -> refused?, oldest first.
        self.verdicts: OrderedDict[str, bool] = OrderedDict()

    def on_request(self, ex: Exchange) -> None:
        agent = ex.environ.get("HTTP_USER_AGENT")
        if agent is None:
            return
        refused = self.verdicts.get(agent)
        if refused is None:
            refused = self._examine(agent.strip())
            self.verdicts[agent] = refused
            if len(self.verdicts) > CACHE_SIZE:
                self.verdicts.popitem(last=False)
        if refused:
            ex.outcomes[self.NAME] = "denied"
            ex.error(403, FORBIDDEN)

    def _examine(self, agent: str) -> bool:
        if any(rule.search(agent) for rule in self.config.allow):
            return False
        return any(rule.search(agent) for rule in (*self.config.deny, *self.bots))
