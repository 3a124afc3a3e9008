"""rate-limiting in-process: settings, windows, Kong's headers and 429, whom it counts, Redis."""

from __future__ import annotations

import calendar
import logging

import pytest
import redis

from gateway.config import ConfigError, load
from gateway.filters.base import Filter
from gateway.filters.rate_limiting.counters import (
    NEIGHBOURHOOD,
    SLOT_BYTES,
    Count,
    CounterTable,
    LocalCounters,
    RedisCounters,
    Window,
)
from gateway.filters.rate_limiting.handler import (
    RateLimiting,
    RateLimitingConfig,
    limit_by,
    rate_headers,
)
from gateway.store.shared import Region
from tests.support.app import gateway_of, in_process
from tests.support.fixture_server import FixtureServer, closed_port_url

# 10:00:30 UTC on some day: 30 s into a minute, 30 min 30 s into an hour.
NOON = 1_700_000_000 - 1_700_000_000 % 86400 + 36000 + 30


class Setup:
    """An in-process gateway with rate-limiting (and maybe key-auth) and a clock the test moves."""

    def __init__(self, upstream: FixtureServer, extra: tuple[Filter, ...] = (), **env: str) -> None:
        environ = {"GATEWAY_UPSTREAM_URL": upstream.url, "GATEWAY_FILTERS": "rate-limiting",
                   **env}
        self.client = in_process(environ, extra)
        self.limiter = next(f for f in gateway_of(self.client).filters
                            if isinstance(f, RateLimiting))
        self.now = float(NOON)
        self.limiter.clock = lambda: self.now

    def get(self, path: str = "/echo", ip: str = "10.0.0.1", **headers: str):
        return self.client.get(path, headers=headers, environ_overrides={"REMOTE_ADDR": ip})


def statuses(setup: Setup, count: int, **kwargs) -> list[int]:
    return [setup.get(**kwargs).status_code for _ in range(count)]


# ---------------------------------------------------------------- configuration

def test_a_limit_is_required():
    with pytest.raises(ConfigError, match="rate-limiting needs a limit"):
        load(RateLimitingConfig, {})


def test_longer_windows_cannot_allow_less(upstream):
    refusal = (r"The limit for hour\(5\.0\) cannot be lower than the limit for "
               r"minute\(10\.0\) \(GATEWAY_RATELIMIT_HOUR=5, GATEWAY_RATELIMIT_MINUTE=10\)")
    with pytest.raises(ConfigError, match=refusal):
        load(RateLimitingConfig, {"GATEWAY_RATELIMIT_MINUTE": "10", "GATEWAY_RATELIMIT_HOUR": "5"})


@pytest.mark.parametrize(("raw", "parsed"), [("consumer", ("consumer", None)), ("IP", ("ip", None)),
                                             ("path", ("path", None)),
                                             ("header:X-Tenant", ("header", "X-Tenant")),
                                             ("service", ("service", None)),
                                             ("credential", ("credential", None)),
                                             ("path:/a/b", ("path", "/a/b"))])
def test_limit_by_values(raw, parsed):
    assert limit_by(raw) == parsed


@pytest.mark.parametrize("raw", ["header", "header:", "header:a b", "ip:x", "host", "path:x"])
def test_bad_limit_by_is_refused(raw):
    with pytest.raises(ConfigError, match=r"LIMIT_BY=.*must be consumer, credential, service"):
        load(RateLimitingConfig, {"GATEWAY_RATELIMIT_MINUTE": "1",
                                  "GATEWAY_RATELIMIT_LIMIT_BY": raw})


def test_redis_policy_needs_a_redis_url_and_is_the_default_with_one(upstream):
    with pytest.raises(ConfigError, match="policy redis needs a Redis: set GATEWAY_REDIS_URL"):
        Setup(upstream, GATEWAY_RATELIMIT_MINUTE="1", GATEWAY_RATELIMIT_POLICY="redis")
    setup = Setup(upstream, GATEWAY_RATELIMIT_MINUTE="1", GATEWAY_REDIS_URL="redis://127.0.0.1:1")
    assert isinstance(setup.limiter.counters, RedisCounters)
    setup = Setup(upstream, GATEWAY_RATELIMIT_MINUTE="1", GATEWAY_REDIS_URL="redis://127.0.0.1:1",
                  GATEWAY_RATELIMIT_POLICY="local")
    assert isinstance(setup.limiter.counters, LocalCounters)


# ---------------------------------------------------------------- counters and headers

def test_local_counters_refuse_without_counting_and_roll_over():
    counters = LocalCounters([Window("second", 2), Window("minute", 3)])
    assert counters.take("a", NOON) == Count(True, (1, 1))
    assert counters.take("a", NOON + 0.5) == Count(True, (2, 2))
    assert counters.take("a", NOON + 0.9) == Count(False, (2, 2))  # second window full
    assert counters.take("b", NOON + 0.9) == Count(True, (1, 1))  # other clients unaffected
    assert counters.take("a", NOON + 1) == Count(True, (1, 3))  # new second
    assert counters.take("a", NOON + 2) == Count(False, (0, 3))  # minute full
    assert counters.take("a", NOON + 30) == Count(True, (1, 1))  # new minute


def test_local_counters_stay_bounded_forgetting_the_oldest_window(caplog):
    table = CounterTable(Region("test", NEIGHBOURHOOD * SLOT_BYTES, shared=False))
    counters = LocalCounters([Window("hour", 1)], table)
    for client in range(NEIGHBOURHOOD):
        assert counters.take(f"c{client}", NOON).allowed
    assert not counters.take("c0", NOON).allowed
    with caplog.at_level(logging.WARNING, "gateway.rate-limiting"):
        assert counters.take("newcomer", NOON + 1).allowed  # took a forgotten one's slot
    assert "counter table is full (32 slots)" in caplog.text
    assert "GATEWAY_RATELIMIT_LOCAL_SLOTS" in caplog.text
    assert not counters.take("newcomer", NOON + 2).allowed  # counted where c-something was
    assert sum(1 for key in table.words[::2] if key) == NEIGHBOURHOOD
    caplog.clear()
    with caplog.at_level(logging.WARNING, "gateway.rate-limiting"):  # the next hour: all free
        assert all(counters.take(f"d{client}", NOON + 3600).allowed for client in range(20))
    assert caplog.text == ""


def test_headers_describe_the_most_restrictive_window():
    windows = (Window("second", 5), Window("minute", 10), Window("hour", 100))
    headers, reset = rate_headers(windows, Count(True, (1, 9, 9)), NOON + 0.25)
    assert dict(headers) == {
        "X-RateLimit-Limit-Second": "5", "X-RateLimit-Remaining-Second": "4",
        "X-RateLimit-Limit-Minute": "10", "X-RateLimit-Remaining-Minute": "1",
        "X-RateLimit-Limit-Hour": "100", "X-RateLimit-Remaining-Hour": "91",
        "RateLimit-Limit": "10", "RateLimit-Remaining": "1", "RateLimit-Reset": "30"}
    assert reset == 30


def test_on_a_tie_the_longer_window_is_reported():
    windows = (Window("minute", 10), Window("hour", 10))
    headers, reset = rate_headers(windows, Count(False, (10, 10)), NOON)
    assert dict(headers)["RateLimit-Remaining"] == "0"
    assert reset == 3570  # the hour's 59 min 30 s


# ---------------------------------------------------------------- requests

def test_allowed_responses_carry_kongs_headers(upstream):
    setup = Setup(upstream, GATEWAY_RATELIMIT_MINUTE="3", GATEWAY_RATELIMIT_LIMIT_BY="ip")
    remaining = []
    for _ in range(3):
        response = setup.get()
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Limit-Minute"] == "3"
        assert response.headers["RateLimit-Limit"] == "3"
        assert response.headers["RateLimit-Reset"] == "30"
        remaining.append(response.headers["X-RateLimit-Remaining-Minute"])
        assert response.headers["RateLimit-Remaining"] == remaining[-1]
    assert remaining == ["2", "1", "0"]


def test_over_the_limit_is_429_with_retry_after_and_the_upstream_is_spared(upstream):
    setup = Setup(upstream, GATEWAY_RATELIMIT_SECOND="1", GATEWAY_RATELIMIT_HOUR="5",
                  GATEWAY_RATELIMIT_LIMIT_BY="ip")
    assert setup.get("/echo").status_code == 200
    before = upstream.hits["/echo"]
    response = setup.get("/echo")
    assert response.status_code == 429
    assert response.json["message"] == "API rate limit exceeded"
    assert response.headers["Retry-After"] == "1"
    assert response.headers["X-RateLimit-Remaining-Second"] == "0"
    assert response.headers["X-RateLimit-Remaining-Hour"] == "4"  # the refused one is not counted
    assert upstream.hits["/echo"] == before
    setup.now += 1
    assert setup.get("/echo").status_code == 200


def test_retry_after_counts_down_to_the_window_end(upstream):
    setup = Setup(upstream, GATEWAY_RATELIMIT_HOUR="1", GATEWAY_RATELIMIT_LIMIT_BY="ip")
    setup.get()
    setup.now += 600.7
    response = setup.get()
    assert response.headers["Retry-After"] == response.headers["RateLimit-Reset"] == "2970"
    setup.now += 2970
    assert setup.get().status_code == 200


def test_error_status_message_and_hidden_headers_are_configurable(upstream):
    setup = Setup(upstream, GATEWAY_RATELIMIT_DAY="1", GATEWAY_RATELIMIT_ERROR_CODE="503",
                  GATEWAY_RATELIMIT_ERROR_MESSAGE="Slow down",
                  GATEWAY_RATELIMIT_HIDE_CLIENT_HEADERS="true")
    first, second = setup.get(), setup.get()
    assert not [name for name, _ in first.headers if "ratelimit" in name.lower()]
    assert second.status_code == 503
    assert second.json["message"] == "Slow down"
    assert "Retry-After" not in second.headers  # Kong: hidden too


def test_limit_by_ip_counts_each_address(upstream):
    setup = Setup(upstream, GATEWAY_RATELIMIT_MINUTE="2", GATEWAY_RATELIMIT_LIMIT_BY="ip")
    assert statuses(setup, 3, ip="10.0.0.1") == [200, 200, 429]
    assert statuses(setup, 3, ip="10.0.0.2") == [200, 200, 429]


def test_limit_by_header_falls_back_to_the_ip(upstream):
    setup = Setup(upstream, GATEWAY_RATELIMIT_MINUTE="1",
                  GATEWAY_RATELIMIT_LIMIT_BY="header:X-Tenant")
    assert statuses(setup, 2, X_Tenant="acme") == [200, 429]
    assert statuses(setup, 2, X_Tenant="globex") == [200, 429]
    assert statuses(setup, 2) == [200, 429]  # no header: by IP
    assert statuses(setup, 1, ip="10.0.0.9") == [200]


def test_limit_by_path_counts_each_path_for_all_clients(upstream):
    setup = Setup(upstream, GATEWAY_RATELIMIT_MINUTE="1", GATEWAY_RATELIMIT_LIMIT_BY="path")
    assert setup.get("/echo/a", ip="10.0.0.1").status_code == 200
    assert setup.get("/echo/a", ip="10.0.0.2").status_code == 429
    assert setup.get("/echo/b", ip="10.0.0.2").status_code == 200


def test_limit_by_consumer_uses_key_auths_consumer_else_the_ip(upstream):
    setup = Setup(upstream, GATEWAY_FILTERS="rate-limiting,key-auth", GATEWAY_RATELIMIT_MINUTE="1",
                  GATEWAY_KEYAUTH_KEYS="alice:ka1,alice:ka2,bob:kb")
    assert setup.get(apikey="ka1").status_code == 200
    assert setup.get(apikey="ka2", ip="10.0.0.7").status_code == 429  # same consumer, other key
    assert setup.get(apikey="kb").status_code == 200
    response = setup.get(apikey="nope")
    assert response.status_code == 401  # key-auth ran first (PRIORITY 1250 > 910)
    assert "RateLimit-Limit" not in response.headers


def test_anonymous_consumers_share_one_bucket_as_in_kong(upstream):
    setup = Setup(upstream, GATEWAY_FILTERS="key-auth,rate-limiting", GATEWAY_RATELIMIT_MINUTE="1",
                  GATEWAY_KEYAUTH_KEYS="bob:kb", GATEWAY_KEYAUTH_ANONYMOUS="guest")
    assert setup.get(ip="10.0.0.1").status_code == 200
    assert setup.get(ip="10.0.0.2").status_code == 429


def test_limit_by_consumer_without_key_auth_is_by_ip(upstream):
    setup = Setup(upstream, GATEWAY_RATELIMIT_MINUTE="1")
    assert statuses(setup, 2, ip="10.0.0.1") == [200, 429]
    assert statuses(setup, 1, ip="10.0.0.2") == [200]


# ---------------------------------------------------------------- redis policy

def test_redis_counters_are_shared_atomic_and_expire(upstream, redis_url):
    env = {"GATEWAY_RATELIMIT_SECOND": "3", "GATEWAY_RATELIMIT_MINUTE": "4",
           "GATEWAY_RATELIMIT_LIMIT_BY": "header:X-Test", "GATEWAY_REDIS_URL": redis_url}
    one, two = Setup(upstream, **env), Setup(upstream, **env)  # two workers
    client = "redis-shared"
    assert [one.get(X_Test=client).status_code, two.get(X_Test=client).status_code,
            one.get(X_Test=client).status_code, two.get(X_Test=client).status_code] == [
        200, 200, 200, 429]
    one.now = two.now = NOON + 1
    last = two.get(X_Test=client)
    assert last.status_code == 200
    assert last.headers["X-RateLimit-Remaining-Minute"] == "0"
    assert one.get(X_Test=client).status_code == 429
    store = redis.Redis.from_url(redis_url)
    keys = sorted(store.keys(f"gateway:ratelimit:{{header:{client}}}:*"))
    assert keys == [f"gateway:ratelimit:{{header:{client}}}:{name}".encode()
                    for name in (f"minute:{NOON - 30}", f"second:{NOON}", f"second:{NOON + 1}")]
    assert 0 < store.ttl(keys[0]) <= 61
    assert 0 < store.ttl(keys[1]) <= 2


def test_the_redis_prefix_separates_gateways_sharing_a_redis(upstream, redis_url):
    env = {"GATEWAY_RATELIMIT_MINUTE": "1", "GATEWAY_RATELIMIT_LIMIT_BY": "header:X-Test",
           "GATEWAY_REDIS_URL": redis_url}
    one = Setup(upstream, **env)
    other = Setup(upstream, **env, GATEWAY_RATELIMIT_REDIS_PREFIX="billing:ratelimit")
    assert [one.get(X_Test="prefixed").status_code, other.get(X_Test="prefixed").status_code,
            other.get(X_Test="prefixed").status_code] == [200, 200, 429]
    assert redis.Redis.from_url(redis_url).keys("billing:ratelimit:{header:prefixed}:minute:*")


@pytest.mark.parametrize("raw", ["a b", "a{b", "x}", "tab\tin"])
def test_a_redis_prefix_that_could_move_the_hash_tag_is_refused(raw):
    with pytest.raises(ConfigError, match=r"REDIS_PREFIX=.*without spaces or braces"):
        load(RateLimitingConfig, {"GATEWAY_RATELIMIT_MINUTE": "1",
                                  "GATEWAY_RATELIMIT_REDIS_PREFIX": raw})


def test_redis_down_lets_requests_pass_with_one_warning(upstream, caplog):
    setup = Setup(upstream, GATEWAY_RATELIMIT_MINUTE="1", GATEWAY_REDIS_URL=closed_port_url()
                  .replace("http", "redis"))
    with caplog.at_level(logging.WARNING, "gateway.rate-limiting"):
        assert statuses(setup, 3) == [200, 200, 200]
    warnings = [r for r in caplog.records if r.name == "gateway.rate-limiting"]
    assert len(warnings) == 1
    assert "letting requests through" in warnings[0].getMessage()
    assert "RateLimit-Limit" not in setup.get().headers


def test_redis_down_is_500_when_not_fault_tolerant(upstream):
    setup = Setup(upstream, GATEWAY_RATELIMIT_MINUTE="1", GATEWAY_RATELIMIT_FAULT_TOLERANT="false",
                  GATEWAY_REDIS_URL=closed_port_url().replace("http", "redis"))
    before = upstream.hits["/echo"]
    response = setup.get()
    assert response.status_code == 500
    assert response.json["message"] == "An unexpected error occurred"
    assert upstream.hits["/echo"] == before


def test_outcomes_are_recorded_for_metrics(upstream):
    seen = []

    class Recorder(Filter):
        NAME, PRIORITY, VERSION, Config = "recorder", 0, "0", object

        def on_log(self, ex):
            seen.append(ex.outcomes.get("rate-limiting"))

    setup = Setup(upstream, (Recorder(None, None),), GATEWAY_RATELIMIT_MINUTE="1")
    for _ in range(2):
        setup.get().close()
    assert seen == ["allowed", "rejected"]


def test_month_and_year_windows_begin_on_the_calendar_and_reset_as_kong():
    now = calendar.timegm((2026, 3, 31, 12, 0, 0))
    month, year = Window("month", 10), Window("year", 100)
    assert month.start(now) == calendar.timegm((2026, 3, 1, 0, 0, 0))
    assert year.start(now) == calendar.timegm((2026, 1, 1, 0, 0, 0))
    assert month.lifetime == 31 * 86400  # a Redis counter outlives a 31-day month
    headers, reset = rate_headers((month,), Count(True, (1,)), now)
    assert dict(headers)["X-RateLimit-Remaining-Month"] == "9"
    assert reset == 1  # Kong: a month counts 30 days in RateLimit-Reset, at least 1
