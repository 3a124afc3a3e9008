"""request-callout: named calls to third parties, their results into the upstream request
and (our extension) into the client's response, with no code (Kong 3.10 Enterprise's plugin).

Kong makes the calls one after another; here each callout runs in its own greenlet
as soon as the callouts it depends on are done, so a request waits only for its
longest chain. Callouts only the ``response`` section needs are joined in the
response phase: they overlap the upstream call. Every call goes through the
external-service client (:mod:`gateway.services`: pool, timeouts, size limit,
breaker, cache with single-flight and stale-if-error).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any
from urllib.parse import parse_qsl, urlencode

import gevent
import yaml
from gevent import Greenlet

from gateway.config import ConfigError, Settings, setting
from gateway.filters.base import Filter
from gateway.filters.request_callout import calls
from gateway.filters.request_callout.body import decorate_body
from gateway.filters.request_callout.plan import Callout, Plan, plan
from gateway.jsoncodec import decode_json, encode_json
from gateway.ops import tracing
from gateway.proxy.exchange import Exchange
from gateway.proxy.headers import is_safe_value
from gateway.proxy.request import replace_body
from gateway.schema import Invalid
from gateway.services import BadAnswer, CallFailed, Result, Service, ServiceError, ServiceOptions

log = logging.getLogger("gateway.request_callout")

#: Largest callout answer read (bytes); a larger one is a failed call.
MAX_ANSWER = 1 << 20
#: The circuit breaker of each callout: consecutive failed calls, then seconds open.
BREAKER_FAILURES, BREAKER_RESET = 5, 30.0
#: Kong's default Redis, used by ``strategy: redis`` with no host and no GATEWAY_REDIS_URL.
KONG_REDIS = "redis://127.0.0.1:6379/0"


def plan_text(raw: str, where: str = "GATEWAY_REQUEST_CALLOUT_CONFIG") -> Plan:
    """The plan from YAML or JSON text (JSON is YAML); ValueError naming the place."""
    try:
        document = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ValueError(f"not YAML or JSON{at}") from None
    try:
        return plan(document, "config", "env")
    except Invalid as exc:
        raise ValueError("; ".join(exc.problems)) from None


def plan_file(raw: str) -> Plan:
    """The plan from a YAML or JSON file."""
    try:
        text = Path(raw).read_text()
    except OSError as exc:
        raise ValueError(f"cannot read the file: {exc.strerror}") from None
    return plan_text(text)


@dataclass(frozen=True)
class RequestCalloutConfig:
    # setting() returns a dataclasses.field, which ruff cannot tell for Plan fields.
    plan: Plan | None = setting(
        "GATEWAY_REQUEST_CALLOUT_CONFIG", plan_text, None,
        "request-callout: Kong's request-callout `config` record as YAML or JSON (callouts, "
        "upstream, cache, and our `response`); see docs/filters/request-callout.md.", secret=True)
    plan_file: Plan | None = setting(
        "GATEWAY_REQUEST_CALLOUT_CONFIG_FILE", plan_file, None,
        "request-callout: a file holding that record (YAML or JSON), instead of "
        "GATEWAY_REQUEST_CALLOUT_CONFIG.")

    def __post_init__(self) -> None:
        if (self.plan is None) == (self.plan_file is None):
            raise ConfigError("request-callout: set one of GATEWAY_REQUEST_CALLOUT_CONFIG and "
                              "GATEWAY_REQUEST_CALLOUT_CONFIG_FILE")

    @property
    def chosen(self) -> Plan:
        return self.plan or self.plan_file  # type: ignore[return-value]


@dataclass(frozen=True)
class Done:
    """How one callout ended: its response, or the error that applies its policy."""

    callout: Callout
    result: Result
    attempts: int

    @property
    def error(self) -> ServiceError | None:
        return self.result.error


class Run:
    """The callouts of one request: each in its own greenlet once its dependencies ended."""

    def __init__(self, owner: RequestCallout, ex: Exchange) -> None:
        self.owner = owner
        self.ex = ex
        self.scope = calls.ExchangeScope(ex)
        self.greenlets: dict[str, Greenlet] = {}
        self.trace = tracing.capture()  # the request's span, for the callouts' greenlets
        for callout in owner.plan.callouts:
            self._spawn(callout.name)

    def _spawn(self, name: str) -> Greenlet:
        if name not in self.greenlets:
            waits = [self._spawn(needed) for needed in self.owner.plan.edges[name]]
            self.greenlets[name] = gevent.spawn(self._run, self.owner.callouts[name], waits)
        return self.greenlets[name]

    def _run(self, callout: Callout, waits: list[Greenlet]) -> Done:
        tracing.restore(self.trace)
        gevent.joinall(waits)
        done = self.owner.execute(callout, self.ex, self.scope)
        if done.result.ok:
            self.ex.callouts[callout.name] = calls.response(done.result.value)
        return done

    def join(self, names: tuple[str, ...]) -> Done | None:
        """Wait for ``names``; the first that failed under fail/retry, if any."""
        for name in names:
            done: Done = self.greenlets[name].get()
            if done.error is not None:
                policy = done.callout.error
                log.warning("request %s: callout %s failed after %d attempt(s): %s",
                            self.ex.request_id, name, done.attempts, done.error)
                if policy.on_error != "continue":
                    return done
        return None

    def cancel(self) -> None:
        """Nothing more is needed: unfinished callouts stop (shared calls go on)."""
        for greenlet in self.greenlets.values():
            greenlet.kill(block=False)


class RequestCallout(Filter):
    """Runs the callout graph in the request phase; decorates the response with the rest."""

    NAME = "request-callout"
    PRIORITY = 812  # Kong's (3.10)
    VERSION = "3.10.0"
    Config = RequestCalloutConfig

    def __init__(self, config: RequestCalloutConfig, settings: Settings) -> None:
        super().__init__(config, settings)
        self.plan = config.chosen
        self.callouts = self.plan.by_name()
        self.services = {c.name: self._service(c, settings) for c in self.plan.callouts}
        self.decoders = {c.name: calls.decoder(c) for c in self.plan.callouts}
        self.reads_body = self.plan.reads_body

    def _service(self, callout: Callout, settings: Settings) -> Service:
        cache = self.plan.cache
        ttl = 0 if cache.strategy == "off" or callout.bypass_cache else cache.cache_ttl
        store = "memory" if cache.strategy != "redis" else (
            cache.redis_url or ("auto" if settings.redis_url else KONG_REDIS))
        connect, read, deadline = callout.timeouts or (None, None, ServiceOptions.timeout)
        https = callout.url.parts[0].startswith("https")  # type: ignore[union-attr]
        options = ServiceOptions(
            timeout=deadline, connect_timeout=connect, read_timeout=read, max_bytes=MAX_ANSWER,
            insecure=https and not callout.ssl_verify, cache_ttl=ttl,
            stale_if_error=cache.stale_if_error, breaker_failures=BREAKER_FAILURES,
            breaker_reset=BREAKER_RESET, error_statuses=callout.error.http_statuses,
            cache_store=store)
        return Service(f"{self.NAME}.{callout.name}", settings, options)

    # -- the phases

    def on_request(self, ex: Exchange) -> None:
        if self.reads_body:  # here, not in each callout's greenlet: one read, a 413 answered
            ex.read_body(calls.MAX_CLIENT_BODY)
        run = Run(self, ex)
        failed = run.join(self.plan.before_upstream)
        if failed is not None:
            run.cancel()
            self._fail(ex, failed)
            return
        self._shape_upstream(ex, run.scope)
        if self.plan.for_response or self._decorates:
            ex.ctx[self.NAME] = run
        else:
            ex.outcomes[self.NAME] = "ok"

    def on_response(self, ex: Exchange) -> None:
        run: Run | None = ex.ctx.pop(self.NAME, None)
        if run is None:
            return
        if not ex.upstream_answer:
            run.cancel()  # nothing to decorate: a filter or an error answered
            ex.outcomes[self.NAME] = "skipped"
            return
        failed = run.join(self.plan.for_response)
        if failed is not None:
            self._fail(ex, failed)
            return
        self._decorate(ex, run.scope)

    def on_log(self, ex: Exchange) -> None:
        run: Run | None = ex.ctx.pop(self.NAME, None)
        if run is not None:  # the upstream failed, so on_response never ran
            run.cancel()
            ex.outcomes[self.NAME] = "skipped"

    # -- one callout

    def execute(self, callout: Callout, ex: Exchange, scope: calls.ExchangeScope) -> Done:
        """Call once, or again on a failure under ``on_error: retry`` (not a bad answer)."""
        started = perf_counter()
        try:
            request = calls.build(callout, ex, scope, ex.route or "", self.plan.plugin_id)
        except BadAnswer as exc:
            return Done(callout, Result("error", 0.0, error=exc), 0)
        policy = callout.error
        attempts = 1 + (policy.retries if policy.on_error == "retry" else 0)
        service, decode = self.services[callout.name], self.decoders[callout.name]
        attempt = 0
        while True:
            attempt += 1
            pending = service.start(request.method, request.url, decode, request.body,
                                    request.headers, request.key)
            try:
                result = pending.result()
            except gevent.GreenletExit:
                pending.cancel()  # the request needs it no more (a shared call goes on)
                raise
            if result.ok or attempt >= attempts or not isinstance(result.error, CallFailed) \
                    or result.outcome == "breaker-open":
                break
        ex.latencies[f"{self.NAME}.{callout.name}"] = perf_counter() - started
        return Done(callout, result, attempt)

    def _fail(self, ex: Exchange, done: Done) -> None:
        """Kong's answer to a failed callout: error_response_code and error_response_msg."""
        ex.outcomes[self.NAME] = "error"
        policy = done.callout.error
        ex.error(policy.error_response_code,
                 policy.error_response_msg.text(calls.ExchangeScope(ex)))

    # -- the upstream request

    def _shape_upstream(self, ex: Exchange, scope: calls.ExchangeScope) -> None:
        plan = self.plan
        if not plan.upstream_headers.forward:
            ex.upstream_headers.clear()
        for name, value in calls.custom_text(plan.upstream_headers.custom, scope):
            if is_safe_value(value):
                ex.upstream_headers[name] = value
            else:
                log.warning("request %s: upstream header %s left out: its value has "
                            "characters not allowed in a header", ex.request_id, name)
        query = plan.upstream_query
        if not query.forward or query.custom:
            pairs = parse_qsl(ex.upstream_query, keep_blank_values=True) if query.forward else []
            ex.upstream_query = urlencode(calls.merged(pairs, query, scope))
        body = plan.upstream_body
        if not body.forward or body.custom:
            self._upstream_body(ex, scope)

    def _upstream_body(self, ex: Exchange, scope: calls.ExchangeScope) -> None:
        part = self.plan.upstream_body
        raw = ex.read_body(calls.MAX_CLIENT_BODY)
        if not part.custom:
            new = b""
        else:
            document: Any = {}
            if part.forward and raw:
                try:
                    document = decode_json(raw)
                except ValueError:
                    document = None
            if not isinstance(document, dict):
                log.warning("request %s: the client's body is not a JSON object: sent "
                            "upstream unchanged", ex.request_id)
                return
            new = encode_json(calls.json_fields(document, part.custom, scope))
            ex.upstream_headers["Content-Type"] = "application/json"
        replace_body(ex.environ, new)
        if new:
            ex.upstream_headers["Content-Length"] = str(len(new))
        else:
            ex.upstream_headers.pop("Content-Length", None)
            ex.upstream_headers.pop("Content-Type", None)

    # -- the client's response (ours)

    @property
    def _decorates(self) -> bool:
        return bool(self.plan.response.headers or self.plan.response.body)

    def _decorate(self, ex: Exchange, scope: calls.ExchangeScope) -> None:
        decoration = self.plan.response
        for name, value in calls.custom_text(decoration.headers, scope):
            if is_safe_value(value):
                ex.headers[name] = value
            else:
                log.warning("request %s: response header %s left out: its value has "
                            "characters not allowed in a header", ex.request_id, name)
        if decoration.body:
            decorate_body(ex, decoration, scope)
        ex.outcomes[self.NAME] = "ok"
