"""rate-limiting: at most N requests per second, minute, hour and day per client (Kong's plugin).

Counts fixed, epoch-aligned windows per client: the consumer key-auth found
(else the client IP), the IP, a header's value or the path. Policy ``local``
counts in the node's memory, shared by all its workers; ``redis`` shares the
counts between every worker and instance. Every response carries Kong's RateLimit-* and
X-RateLimit-* headers; a client over a limit gets 429 "API rate limit exceeded"
with Retry-After.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import cached_property
from itertools import combinations

from prometheus_client import Counter
from werkzeug.datastructures import Headers

from gateway.config import (
    ConfigError,
    Settings,
    boolean,
    choice,
    kong_number,
    number,
    redis_target,
    redis_url,
    setting,
    text,
)
from gateway.filters.base import Filter
from gateway.filters.rate_limiting.counters import (
    PERIODS,
    Count,
    LocalCounters,
    RedisCounters,
    Window,
)
from gateway.proxy.errors import UNEXPECTED, GatewayError
from gateway.proxy.exchange import Exchange
from gateway.proxy.headers import is_header_name, is_safe_value, set_fields
from gateway.store.redis import OutageWarning, RedisUnavailable

log = logging.getLogger("gateway.rate-limiting")

REJECTIONS = Counter(
    "gateway_ratelimit_rejections", "Requests answered 429 by the rate-limiting filter.")


def limit_by(raw: str) -> tuple[str, str | None]:
    """consumer, credential, service, ip, path, header:NAME or path:/PATH -> (kind, header
    name, path or None)."""
    kind, sep, name = raw.partition(":")
    kind = kind.strip().lower()
    if not sep and kind in ("consumer", "credential", "service", "ip", "path"):
        return kind, None
    if kind == "header" and is_header_name(name.strip()):
        return kind, name.strip()
    if kind == "path" and name.startswith("/") and is_safe_value(name):
        return kind, name
    raise ValueError("must be consumer, credential, service, ip, path, path:/PATH or "
                     "header:NAME")


def redis_prefix(raw: str) -> str:
    """A Redis key prefix: printable, no spaces, and no braces (a ``{`` would move the hash
    tag that keeps a client's keys in one Cluster slot)."""
    if not raw.isprintable() or any(c in raw for c in " {}"):
        raise ValueError("must be printable, without spaces or braces")
    return raw


def _limit(period: str) -> object:
    env = f"GATEWAY_RATELIMIT_{period.upper()}"
    return setting(env, kong_number(greater_than=0), None,
                   f"rate-limiting: requests allowed per {period} per client (a number > 0, "
                   f"as Kong's: 2.5 lets 3 through); unset: no per-{period} limit. Set at "
                   f"least one of the six.")


@dataclass(frozen=True)
class RateLimitingConfig:
    second: float | None = _limit("second")
    minute: float | None = _limit("minute")
    hour: float | None = _limit("hour")
    day: float | None = _limit("day")
    month: float | None = _limit("month")
    year: float | None = _limit("year")
    limit_by: tuple[str, str | None] = setting(
        "GATEWAY_RATELIMIT_LIMIT_BY", limit_by, "consumer",
        "rate-limiting: whom a limit applies to: `consumer` (key-auth's; the client IP when "
        "there is none), `credential` (the key; the IP for anonymous), `service` (one bucket "
        "per service), `ip`, `header:NAME` (the IP when absent), `path` (one bucket per "
        "path) or `path:/PATH` (Kong's: requests to /PATH share one bucket, others by IP).")
    policy: str | None = setting(
        "GATEWAY_RATELIMIT_POLICY", choice("local", "redis"), None,
        "rate-limiting: `local` (counts in the node's memory, shared by all its workers; "
        "each instance counts alone) or `redis` (shared by all workers and instances); default: "
        "redis when GATEWAY_REDIS_URL (or GATEWAY_RATELIMIT_REDIS_URL) is set, else local.")
    redis_url: str | None = setting(
        "GATEWAY_RATELIMIT_REDIS_URL", redis_url, None,
        "rate-limiting: the Redis the `redis` policy counts in, in the forms of "
        "GATEWAY_REDIS_URL; default: GATEWAY_REDIS_URL. A declarative file's plugin gives "
        "it as Kong's `redis` record.", secret=True)
    redis_prefix: str = setting(
        "GATEWAY_RATELIMIT_REDIS_PREFIX", redis_prefix, "gateway:ratelimit",
        "rate-limiting: the start of its counters' Redis keys: gateways that share a Redis "
        "and this prefix share their counts. A declarative file's plugin on a route or "
        "service adds them to it (Kong's keys hold the plugin's route and service ids), so "
        "two plugins never share counts.")
    fault_tolerant: bool = setting(
        "GATEWAY_RATELIMIT_FAULT_TOLERANT", boolean, "true",
        "rate-limiting: when Redis fails, let requests through and log a warning (true) or "
        "answer 500 (false).")
    hide_client_headers: bool = setting(
        "GATEWAY_RATELIMIT_HIDE_CLIENT_HEADERS", boolean, "false",
        "rate-limiting: leave out the RateLimit-*, X-RateLimit-* and (on a refusal) "
        "Retry-After response headers.")
    error_code: int = setting(
        "GATEWAY_RATELIMIT_ERROR_CODE", number(int, 400, 599), "429",
        "rate-limiting: status answered to a client over its limit.")
    error_message: str = setting(
        "GATEWAY_RATELIMIT_ERROR_MESSAGE", text, "API rate limit exceeded",
        "rate-limiting: message answered to a client over its limit.")

    def __post_init__(self) -> None:
        windows = self.windows
        if not windows:
            raise ConfigError(
                "rate-limiting needs a limit: at least one of these fields must be non-empty: "
                + ", ".join(f"'config.{period}'" for period in PERIODS)
                + " (GATEWAY_RATELIMIT_SECOND, _MINUTE, _HOUR, _DAY, _MONTH or _YEAR)")
        # Kong's order: for each window, shortest first, the first longer one set lower.
        for shorter, longer in combinations(windows, 2):
            if longer.limit < shorter.limit:
                raise ConfigError(
                    f"The limit for {longer.period}({longer.limit:.1f}) cannot be lower than "
                    f"the limit for {shorter.period}({shorter.limit:.1f}) "
                    f"(GATEWAY_RATELIMIT_{longer.period.upper()}={longer.limit}, "
                    f"GATEWAY_RATELIMIT_{shorter.period.upper()}={shorter.limit})")

    @cached_property
    def windows(self) -> tuple[Window, ...]:
        """The configured limits, shortest window first (made once: read per request)."""
        return tuple(Window(period, getattr(self, period)) for period in PERIODS
                     if getattr(self, period) is not None)


def rate_headers(windows: tuple[Window, ...], count: Count,
                 now: float) -> tuple[list[tuple[str, str]], int]:
    """Kong's header fields for ``count`` and the seconds until the most restrictive window
    resets.

    The most restrictive window has the fewest requests left (the longer one on a
    tie); RateLimit-Limit/Remaining/Reset describe it. The fields are names of our own,
    one per window, and numbers: nothing for werkzeug to check, so a plain list.
    """
    fields = []
    tightest = None
    for window, used in zip(windows, count.used, strict=True):
        remaining = window.limit - used if used < window.limit else 0
        limit_name, remaining_name = window.header_names
        remaining_text = str(remaining)
        fields += [(limit_name, window.limit_text), (remaining_name, remaining_text)]
        if tightest is None or remaining < tightest[0] or (
                remaining == tightest[0] and window.seconds > tightest[1].seconds):
            tightest = (remaining, window, remaining_text)
    _, window, remaining_text = tightest
    reset = max(1, window.seconds - int(now - window.start(now)))
    fields += [("RateLimit-Limit", window.limit_text), ("RateLimit-Remaining", remaining_text),
               ("RateLimit-Reset", str(reset))]
    return fields, reset


class RateLimiting(Filter):
    """Counts each request in the request phase; adds the headers in the response phase."""

    NAME = "rate-limiting"
    PRIORITY = 910  # Kong's: after authentication (key-auth 1250), before proxy-cache (100)
    VERSION = "1.0.0"
    Config = RateLimitingConfig

    def __init__(self, config: RateLimitingConfig, settings: Settings) -> None:
        super().__init__(config, settings)
        url = config.redis_url or settings.redis_url
        policy = config.policy or ("redis" if url else "local")
        if policy == "redis":
            if not url:
                raise ConfigError("policy redis needs a Redis: set GATEWAY_REDIS_URL (or "
                                  "GATEWAY_RATELIMIT_REDIS_URL; in a declarative file, the "
                                  "plugin's config.redis.host)")
            self.counters: LocalCounters | RedisCounters = RedisCounters(
                url, config.windows, config.redis_prefix)
        else:
            self.counters = LocalCounters(config.windows)
        #: The clock, in epoch seconds (tests move it).
        self.clock = time.time
        where = redis_target(url).shown().replace("%", "%%") if policy == "redis" else "Redis"
        self.outage = OutageWarning(
            log, f"rate-limiting: {where} failed, letting requests through unlimited: %s")

    def on_request(self, ex: Exchange) -> None:
        now = self.clock()
        try:
            count = self.counters.take(self.identify(ex), now)
        except RedisUnavailable as exc:
            ex.outcomes[self.NAME] = "unavailable"
            self._store_failed(exc)
            return
        hidden = self.config.hide_client_headers
        if not hidden:
            ex.ctx[self.NAME], reset = rate_headers(self.config.windows, count, now)
        if count.allowed:
            ex.outcomes[self.NAME] = "allowed"
            return
        ex.outcomes[self.NAME] = "rejected"
        REJECTIONS.inc()
        ex.error(self.config.error_code, self.config.error_message,
                 None if hidden else Headers([("Retry-After", str(reset))]))

    def on_response(self, ex: Exchange) -> None:
        fields = ex.ctx.get(self.NAME)
        if fields is not None:  # names and numbers of our own: nothing to check
            set_fields(ex.headers, fields, checked=True)

    def identify(self, ex: Exchange) -> str:
        """The client a request is counted for, as ``kind:value``; the IP when there is none."""
        kind, header = self.config.limit_by
        if kind == "consumer":
            value = ex.consumer.username if ex.consumer else None
        elif kind == "credential":
            value = ex.consumer.credential if ex.consumer else None
        elif kind == "service":
            value = ex.service
        elif kind == "header":
            value = ex.environ.get("HTTP_" + header.upper().replace("-", "_"))
        elif kind == "path":
            value = ex.path if header is None or ex.path == header else None
        else:
            value = None
        return f"{kind}:{value}" if value else f"ip:{ex.client_ip}"

    def _store_failed(self, exc: RedisUnavailable) -> None:
        """Redis failed: pass the request (an occasional warning) or answer 500."""
        if not self.config.fault_tolerant:
            log.error("rate-limiting: Redis failed, answering 500 (not fault tolerant): %s", exc)
            raise GatewayError(500, UNEXPECTED)
        self.outage(exc)
