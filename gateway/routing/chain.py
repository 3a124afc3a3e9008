"""The filters a route runs, by phase, and plugins scoped to consumers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gateway.filters.base import Filter
from gateway.proxy.exchange import Exchange


class Chain:
    """A route's filters, highest PRIORITY first (Kong's order), split by the phases they use."""

    def __init__(self, filters: Sequence[Filter]) -> None:
        self.filters = sorted(filters, key=lambda f: f.PRIORITY, reverse=True)
        self.request_filters = [f for f in self.filters if f.implements("on_request")]
        self.response_filters = [f for f in self.filters if f.implements("on_response")]
        self.log_filters = [f for f in self.filters if f.implements("on_log")]

    @classmethod
    def log_only(cls, filters: Sequence[Filter]) -> Chain:
        """The log phase of ``filters`` alone: what Kong runs of its global plugins on a
        request no route took (the router's 404 comes before their other phases)."""
        chain = cls(filters)
        chain.request_filters, chain.response_filters = [], []
        return chain


class ByConsumer(Filter):
    """One plugin with a configuration per consumer (Kong's consumer-scoped plugins).

    The consumer an authentication filter found picks the configuration; without
    one (or before authentication ran) ``default`` applies, and no filter runs when
    that is None. The choice made in the request phase holds for the whole request.
    """

    def __init__(self, default: Filter | None, by_consumer: Mapping[str, Filter]) -> None:
        self.default = default
        self.by_consumer = dict(by_consumer)
        model = default or next(iter(self.by_consumer.values()))
        self.NAME = model.NAME
        self.PRIORITY = model.PRIORITY
        self.VERSION = model.VERSION
        self._picked = f"{model.NAME}/by-consumer"

    def _pick(self, ex: Exchange) -> Filter | None:
        if self._picked in ex.ctx:
            return ex.ctx[self._picked]
        consumer = ex.consumer
        chosen = self.by_consumer.get(consumer.username) if consumer else None
        ex.ctx[self._picked] = chosen = chosen or self.default
        return chosen

    def on_request(self, ex: Exchange) -> None:
        if chosen := self._pick(ex):
            chosen.on_request(ex)

    def on_response(self, ex: Exchange) -> None:
        if chosen := self._pick(ex):
            chosen.on_response(ex)

    def on_log(self, ex: Exchange) -> None:
        if chosen := self._pick(ex):
            chosen.on_log(ex)
