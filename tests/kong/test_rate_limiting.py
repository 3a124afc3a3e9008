"""Kong's rate-limiting access spec, case by case:
spec/03-plugins/23-rate-limiting/04-access_spec.lua (Kong 3.10), DB-less, each case on a
fresh gateway, policies `local` and `redis` (a real redis-server), httpbin's /anything
standing in for the spec's always_200 upstream. A client address is the WSGI
REMOTE_ADDR (the spec's X-Real-IP from a trusted proxy).

Skipped cases (spec case: why):

- every case under policy `cluster`: not supported (counts live in memory or Redis).
- the Redis SSL variants (`ssl_verify`, `ssl_no_verify`): the Redis here is plain TCP;
  TLS is a `rediss://` GATEWAY_REDIS_URL, not plugin config.
- "blocks if exceeding limit #grpc": no gRPC here.
- "does not work / keeps working if an error occurs" under `cluster` (a dropped table):
  no database; the `redis` ones are translated twice: with the plugin's own `redis`
  record on a closed port (the spec's), and with GATEWAY_REDIS_URL on a closed port.
- "rate-limiting with sync_rate": `sync_rate` is not supported (counts are synchronous).

05-integration_spec.lua (redis policy, the plugin's own `redis` record): "connection pool
respects database setting" and the two Redis ACL cases are translated; skipped: the SSL
strategies (plain TCP Redis here), the `sync_rate` variants (not supported), "creating
rate-limiting plugins using api" (Admin API). 01-schema_spec.lua: the configs it accepts
and refuses, through a declarative file. Skipped whole: 02-policies_spec.lua (unit tests
of Kong's policy module: its shm TTLs and `cluster` table), 03-api_spec.lua,
06-shorthand_fields_spec.lua (Admin API round trips; the shorthands themselves load, see
the schema cases) and 07-hybrid_mode_spec.lua (no hybrid mode).

Kong's `retry` (run again once in the next minute when a window rolled over mid-case) is
a wait for a fresh minute before the cases that count per minute.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis

from gateway.config import ConfigError
from tests.kong.plugin_kit import kong_client, send
from tests.support.net import free_port

POLICIES = ["local", "redis"]
LIMIT_BY = ["ip", "consumer", "credential", "service", "header", "path"]
KEY_NAME, CREDENTIAL = "test-key", "test_credential"


@pytest.fixture(autouse=True)
def fresh_minute() -> None:
    """Start with at least 3 s left in this minute (Kong's retry, without the minute)."""
    left = 60 - time.time() % 60
    if left < 3:
        time.sleep(left + 0.1)


@pytest.fixture
def redis_env(redis_url):
    """GATEWAY_REDIS_URL of an empty Redis: counts of earlier cases do not carry over."""
    redis.Redis.from_url(redis_url).flushdb()
    return {"GATEWAY_REDIS_URL": redis_url}


def gateway(httpbin: str, env: dict[str, str], plugins: list[dict[str, Any]],
            services: dict[str, list[str]] | None = None, key_auth: bool = False,
            consumers: tuple[tuple[str, str], ...] = (("Bob", CREDENTIAL),)) -> Any:
    """A gateway whose services (name -> paths) proxy to httpbin, with ``plugins`` (a
    ``service`` field names a service's plugin) and key-auth (key name test-key) if asked."""
    services = services or {"test": ["/test"]}
    plugins = plugins + ([{"name": "key-auth", "config": {"key_names": [KEY_NAME]}}]
                         if key_auth else [])
    kong = {
        "_format_version": "3.0",
        "services": [{"name": name, "url": f"{httpbin}/anything",
                      "routes": [{"name": name, "paths": paths}]}
                     for name, paths in services.items()],
        "plugins": plugins,
        "consumers": [{"username": user, "keyauth_credentials": [{"key": key}]}
                      for user, key in consumers],
    }
    return kong_client(json.dumps(kong), **env)


def limit(policy: str, service: str | None = None, **config: Any) -> dict[str, Any]:
    """The rate-limiting plugin, on ``service`` (None: global)."""
    plugin = {"name": "rate-limiting", "config": {"policy": policy, **config}}
    return {**plugin, "service": service} if service else plugin


def requests(client, n: int, path: str = "/test", headers: dict[str, str] | None = None,
             ip: str = "127.0.0.1") -> dict[str, list[Any]]:
    """Kong's client_requests: per response, status and the rate-limit headers."""
    got: dict[str, list[Any]] = {key: [] for key in (
        "status", "minute_limit", "minute_remaining", "hour_limit", "hour_remaining",
        "limit", "remaining", "reset")}
    names = {"minute_limit": "X-RateLimit-Limit-Minute",
             "minute_remaining": "X-RateLimit-Remaining-Minute",
             "hour_limit": "X-RateLimit-Limit-Hour", "hour_remaining": "X-RateLimit-Remaining-Hour",
             "limit": "RateLimit-Limit", "remaining": "RateLimit-Remaining",
             "reset": "RateLimit-Reset"}
    for _ in range(n):
        response = send(client, "GET", path, "rl.test", headers,
                        environ_base={"REMOTE_ADDR": ip})
        got["status"].append(response.status_code)
        for key, name in names.items():
            value = response.headers.get(name)
            got[key].append(None if value is None else float(value) if "." in value
                            else int(value))
    return got


def validate(got: dict[str, list[Any]], hour: bool = False) -> None:
    """Kong's validate_headers: six allowed a minute, the seventh refused."""
    assert got["minute_limit"] == [6] * 7
    assert got["minute_remaining"] == [5, 4, 3, 2, 1, 0, 0]
    if hour:
        assert all(v > 0 for v in got["hour_limit"])
        assert all(v >= 0 for v in got["hour_remaining"])
    assert got["limit"] == [6] * 7
    assert got["remaining"] == [5, 4, 3, 2, 1, 0, 0]
    assert got["status"] == [200] * 6 + [429]
    assert all(0 <= reset <= (3600 if hour else 60) for reset in got["reset"])


def env_for(policy: str, request: pytest.FixtureRequest) -> dict[str, str]:
    return request.getfixturevalue("redis_env") if policy == "redis" else {}


# ------------------------------------------------- blocks if exceeding limit (single X)

@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("limit_by", LIMIT_BY)
def test_blocks_if_exceeding_limit_single(httpbin, request, policy, limit_by):
    keyed = limit_by in ("consumer", "credential")
    client = gateway(httpbin, env_for(policy, request), [limit(
        policy, minute=6, limit_by=limit_by, path="/test", header_name="test-header",
        service="test")], key_auth=keyed)
    headers = ({KEY_NAME: CREDENTIAL} if keyed
               else {"test-header": "test"} if limit_by == "header" else None)
    validate(requests(client, 7, headers=headers))


@pytest.mark.parametrize("policy", POLICIES)
def test_blocks_if_exceeding_limit_multiple_ip(httpbin, request, policy):
    client = gateway(httpbin, env_for(policy, request), [limit(policy, minute=6,
                                                                 limit_by="ip")])
    for ip in ("127.0.0.1", "127.0.0.2"):
        validate(requests(client, 7, ip=ip))


@pytest.mark.parametrize("policy", POLICIES)
def test_hide_client_headers_single_ip(httpbin, request, policy):
    client = gateway(httpbin, env_for(policy, request), [limit(
        policy, minute=6, limit_by="ip", hide_client_headers=True)])
    names = ("X-Ratelimit-Limit-Minute", "X-Ratelimit-Remaining-Minute", "Ratelimit-Limit",
             "Ratelimit-Remaining", "Ratelimit-Reset", "Retry-After")
    statuses = []
    for _ in range(7):
        response = send(client, "GET", "/test", "rl.test")
        statuses.append(response.status_code)
        assert not [name for name in names if name in response.headers]
    assert statuses == [200] * 6 + [429]


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("limit_by", LIMIT_BY)
def test_handles_multiple_limits_single_ip(httpbin, request, policy, limit_by):
    # path and header_name are set whatever limit_by reads, as in Kong's config
    client = gateway(httpbin, env_for(policy, request), [limit(
        policy, minute=6, hour=99999, limit_by=limit_by, path="/test",
        header_name="test-header")])
    validate(requests(client, 7), hour=True)


@pytest.mark.parametrize("policy", POLICIES)
def test_expire_counter(httpbin, request, policy):
    client = gateway(httpbin, env_for(policy, request), [limit(policy, second=1,
                                                                 limit_by="ip")])
    if time.time() % 1 > 0.7:  # Kong's step: not at the end of the window
        time.sleep(0.35)
    first = send(client, "GET", "/test", "rl.test", environ_base={"REMOTE_ADDR": "127.0.0.3"})
    assert first.status_code == 200
    assert (first.headers["RateLimit-Limit"], first.headers["RateLimit-Remaining"]) == ("1", "0")
    assert int(first.headers["RateLimit-Reset"]) >= 0
    assert first.headers["X-RateLimit-Limit-Second"] == "1"
    assert first.headers["X-RateLimit-Remaining-Second"] == "0"
    second = send(client, "GET", "/test", "rl.test", environ_base={"REMOTE_ADDR": "127.0.0.3"})
    assert second.status_code == 429
    assert "API rate limit exceeded" in second.json["message"]
    time.sleep(1)
    third = send(client, "GET", "/test", "rl.test", environ_base={"REMOTE_ADDR": "127.0.0.3"})
    assert third.status_code == 200


@pytest.mark.parametrize("policy", POLICIES)
def test_blocks_with_a_custom_error_code_and_message(httpbin, request, policy):
    client = gateway(httpbin, env_for(policy, request), [limit(
        policy, minute=1, limit_by="ip", path="/test", error_code=404,
        error_message="Fake Not Found")])
    assert send(client, "GET", "/test", "rl.test").status_code == 200
    response = send(client, "GET", "/test", "rl.test")
    assert response.status_code == 404
    assert "Fake Not Found" in response.json["message"]


@pytest.mark.parametrize("policy", POLICIES)
def test_blocks_if_exceeding_limit_multiple_service(httpbin, request, policy):
    client = gateway(httpbin, env_for(policy, request), [limit(policy, minute=6,
                                                                 limit_by="service")],
                     services={"one": ["/1-test"], "two": ["/2-test"]})
    for path in ("/1-test", "/2-test"):
        validate(requests(client, 7, path))


@pytest.mark.parametrize("policy", POLICIES)
def test_blocks_if_exceeding_limit_multiple_path(httpbin, request, policy):
    client = gateway(httpbin, env_for(policy, request), [limit(
        policy, minute=6, limit_by="path", path="/1-test", service="test")],
        services={"test": ["/1-test", "/2-test"]})
    for path in ("/1-test", "/2-test"):  # /2-test is not the path: counted by IP
        validate(requests(client, 7, path))


@pytest.mark.parametrize("policy", POLICIES)
def test_blocks_if_exceeding_limit_multiple_header(httpbin, request, policy):
    client = gateway(httpbin, env_for(policy, request), [limit(
        policy, minute=6, limit_by="header", header_name="test-header-1", service="test")])
    for name in ("test-header-1", "test-header-2"):  # the second one: counted by IP
        validate(requests(client, 7, headers={name: "test"}))


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("limit_by", ["consumer", "credential"])
def test_blocks_if_exceeding_limit_multiple_consumers(httpbin, request, policy, limit_by):
    client = gateway(httpbin, env_for(policy, request), [limit(
        policy, minute=6, limit_by=limit_by, service="test")], key_auth=True,
        consumers=(("Bob", "test_credential_1"), ("Alice", "test_credential_2")))
    for key in ("test_credential_1", "test_credential_2"):
        validate(requests(client, 7, headers={KEY_NAME: key}))


# ------------------------------------------------------------- Redis errors (redis policy)

def failed(response, status: int) -> None:
    """Kong's answer when Redis fails: 500 (or the upstream's 200), no rate-limit headers."""
    assert response.status_code == status
    if status == 500:
        assert "An unexpected error occurred" in response.json["message"]
    for name in ("X-Ratelimit-Limit-Minute", "X-Ratelimit-Remaining-Minute",
                 "Ratelimit-Limit", "Ratelimit-Remaining", "Ratelimit-Reset"):
        assert name not in response.headers


@pytest.mark.parametrize(("fault_tolerant", "status"), [(False, 500), (True, 200)])
def test_redis_errors(httpbin, fault_tolerant, status):
    client = gateway(httpbin, {"GATEWAY_REDIS_URL": f"redis://127.0.0.1:{free_port()}"},
                     [limit("redis", minute=6, limit_by="ip", fault_tolerant=fault_tolerant)])
    failed(send(client, "GET", "/test", "rl.test"), status)


@pytest.mark.parametrize(("fault_tolerant", "status"), [(False, 500), (True, 200)])
def test_redis_errors_with_the_plugins_own_redis(httpbin, fault_tolerant, status):
    # the spec's: a bad port in the plugin's redis record, no GATEWAY_REDIS_URL
    client = gateway(httpbin, {}, [limit(
        "redis", service="test", minute=6, limit_by="ip", fault_tolerant=fault_tolerant,
        redis={"host": "127.0.0.1", "port": free_port(), "ssl": False})])
    failed(send(client, "GET", "/test", "rl.test"), status)


# ------------------------------------------ 05-integration: the plugin's own redis record

VALID_USER, INVALID_USER, PASSWORD = "ratelimit-user", "some-user", "secret"


def database(redis_url: str, number: int) -> redis.Redis:
    """A client of database ``number`` of the test Redis (its URL names database 0)."""
    address = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs
    return redis.Redis(host=address["host"], port=address["port"], db=number)


@pytest.fixture
def redis_admin(redis_url):
    """The test Redis, databases 1-4 emptied, with Kong's two ACL users: one allowed every
    command, one only GET (removed afterwards)."""
    admin = redis.Redis.from_url(redis_url)
    for number in (1, 2, 3, 4):
        database(redis_url, number).flushdb()
    admin.execute_command("ACL", "SETUSER", VALID_USER, "on", "allkeys", "allcommands",
                          ">" + PASSWORD)
    admin.execute_command("ACL", "SETUSER", INVALID_USER, "on", "allkeys", "+get",
                          ">" + PASSWORD)
    yield admin
    admin.execute_command("ACL", "DELUSER", VALID_USER, INVALID_USER)


def integration_gateway(httpbin: str, redis_url: str) -> Any:
    """The spec's routes redistest1-4.test, each limited in its own Redis database (3 and 4
    as the ACL users)."""
    port = database(redis_url, 0).connection_pool.connection_kwargs["port"]
    users = {3: {"username": VALID_USER, "password": PASSWORD},
             4: {"username": INVALID_USER, "password": PASSWORD}}
    routes = []
    for number in (1, 2, 3, 4):
        record = {"host": "127.0.0.1", "port": port, "database": number, "timeout": 10000,
                  **users.get(number, {})}
        routes.append({"name": f"r{number}", "hosts": [f"redistest{number}.test"],
                       "plugins": [{"name": "rate-limiting", "config": {
                           "minute": 2 if number == 3 else 1, "policy": "redis",
                           "redis": record, "fault_tolerant": False}}]})
    return kong_client(json.dumps({"_format_version": "3.0", "services": [
        {"name": "mock", "url": f"{httpbin}/anything", "routes": routes}]}))


def sizes(redis_url: str) -> list[int]:
    """DBSIZE of databases 1, 2 and 3."""
    return [database(redis_url, number).dbsize() for number in (1, 2, 3)]


def test_connection_pool_respects_database_setting(httpbin, redis_url, redis_admin):
    client = integration_gateway(httpbin, redis_url)
    assert sizes(redis_url) == [0, 0, 0]
    assert send(client, "GET", "/status/200", "redistest1.test").status_code == 200
    assert sizes(redis_url) == [1, 0, 0]  # database 1 has the hit, 2 and 3 none
    assert send(client, "GET", "/status/200", "redistest2.test").status_code == 200
    assert sizes(redis_url) == [1, 1, 0]
    assert send(client, "GET", "/status/200", "redistest3.test").status_code == 200
    assert all(size > 0 for size in sizes(redis_url))


def test_authenticates_with_a_valid_redis_user_having_proper_acls(httpbin, redis_url,
                                                                  redis_admin):
    client = integration_gateway(httpbin, redis_url)
    response = send(client, "GET", "/status/200", "redistest3.test")
    assert response.status_code == 200
    assert response.headers["X-RateLimit-Remaining-Minute"] == "1"  # counted in Redis


def test_fails_to_rate_limit_for_a_redis_user_with_missing_acls(httpbin, redis_url,
                                                                redis_admin):
    client = integration_gateway(httpbin, redis_url)
    failed(send(client, "GET", "/status/200", "redistest4.test"), 500)


# ----------------------------------------------------------- enable globally

def test_global_for_single_consumer(httpbin):
    client = gateway(httpbin, {}, [limit("local", minute=6, limit_by="credential")],
                     services={"one": ["/1-test"], "two": ["/2-test"]}, key_auth=True,
                     consumers=(("Bob", "test-credential"),))
    validate(requests(client, 7, "/1-test", {KEY_NAME: "test-credential"}))
    got = requests(client, 7, "/2-test", {KEY_NAME: "test-credential"})
    assert got["minute_limit"] == got["limit"] == [6] * 7
    assert got["minute_remaining"] == got["remaining"] == [0] * 7
    assert got["status"] == [429] * 7
    assert all(0 <= reset <= 60 for reset in got["reset"])


# ------------------------------------------------------------------ schema (01-schema_spec)

def schema_file(config: dict[str, Any]) -> str:
    return json.dumps({"_format_version": "3.0", "services": [{
        "name": "s", "url": "http://127.0.0.1:9", "routes": [{"name": "r", "paths": ["/"]}],
        "plugins": [{"name": "rate-limiting", "config": config}]}]})


REDIS_RECORD = {"host": "127.0.0.1", "port": 6379, "database": 0, "username": "test",
                "password": "testXXX", "ssl": True, "ssl_verify": False, "timeout": 1100,
                "server_name": "test-redis.example.com"}


@pytest.mark.parametrize("config", [
    {"second": 10},  # proper config validates
    {"second": 10, "minute": 20, "hour": 30, "day": 40, "month": 50, "year": 60},  # (bis)
    {"second": 10, "limit_by": "header", "header_name": "X-App-Version"},  # (header)
    {"second": 10, "limit_by": "path", "path": "/request"},  # (path)
    {"second": 10, "policy": "redis", "redis": REDIS_RECORD},  # with redis new structure
    {"second": 0.5, "minute": 2.5},  # Kong's limits are numbers greater than 0
    {"second": 10, "policy": "redis",  # with redis legacy structure
     **{f"redis_{name}": value for name, value in REDIS_RECORD.items()}},
])
def test_schema_accepts(config):
    kong_client(schema_file(config))


@pytest.mark.parametrize(("config", "error"), [
    ({"second": 20, "hour": 10},  # limits: smaller unit is less than bigger unit
     "The limit for hour(10.0) cannot be lower than the limit for second(20.0)"),
    ({"second": 10, "minute": 20, "hour": 30, "day": 40, "month": 60, "year": 50},  # (bis)
     "The limit for year(50.0) cannot be lower than the limit for month(60.0)"),
    ({"second": 10, "minute": 20, "hour": 5},  # Kong's order: the first shorter window first
     "The limit for hour(5.0) cannot be lower than the limit for second(10.0)"),
    ({"second": 0}, "config.second: value must be greater than 0"),
    ({"minute": -1}, "config.minute: value must be greater than 0"),
    ({"minute": "5"}, "config.minute: expected a number"),
    ({}, "at least one of these fields must be non-empty: 'config.second', 'config.minute', "
         "'config.hour', 'config.day', 'config.month', 'config.year'"),  # invalid limit
    # limited by header (path) but the header_name (path) field is missing: the field named
    # (Kong's words are "required field missing")
    ({"second": 10, "limit_by": "header"}, "config.header_name"),
    ({"second": 10, "limit_by": "path"}, "config.path"),
    # redis required fields are supplied: without a host (and no GATEWAY_REDIS_URL) refused
    ({"second": 10, "policy": "redis",
      "redis": {k: v for k, v in REDIS_RECORD.items() if k != "host"}}, "config.redis.host"),
])
def test_schema_errors(config, error):
    with pytest.raises(ConfigError) as refused:
        kong_client(schema_file(config))
    assert "plugins[rate-limiting].config" in str(refused.value)
    assert error in str(refused.value)


@pytest.mark.parametrize("policy", POLICIES)
def test_a_fractional_limit_counts_as_kongs(httpbin, request, policy):
    """Kong's limits are numbers: a request passes while the usage before it is below the
    limit (2.5 lets three through), and the headers carry Lua's numbers: the limit 2.5,
    the remaining 1.5, 0.5, then 0."""
    client = gateway(httpbin, env_for(policy, request), [limit(policy, minute=2.5)])
    got = requests(client, 4)
    assert got["status"] == [200, 200, 200, 429]
    assert got["minute_limit"] == got["limit"] == [2.5] * 4
    assert got["minute_remaining"] == got["remaining"] == [1.5, 0.5, 0, 0]


def test_an_integral_limit_written_as_a_float_is_sent_as_an_integer(httpbin):
    """``minute: 5.0`` in YAML is Lua's 5: its header says 5."""
    client = gateway(httpbin, {}, [limit("local", minute=5.0)])
    response = send(client, "GET", "/test", "rl.test")
    assert response.headers["X-RateLimit-Limit-Minute"] == "5"
    assert response.headers["X-RateLimit-Remaining-Minute"] == "4"


# ------------------------------------------- each plugin's own counters (Kong's counter keys)

@pytest.mark.parametrize("policy", POLICIES)
def test_two_services_plugins_count_apart(httpbin, request, policy):
    """Kong keys a counter by its plugin's route and service ids (policies/init.lua): two
    services' plugins, one client, each its own two requests a minute, in memory as in a
    shared Redis."""
    client = gateway(httpbin, env_for(policy, request),
                     [limit(policy, service="one", minute=2, limit_by="ip"),
                      limit(policy, service="two", minute=2, limit_by="ip")],
                     services={"one": ["/one"], "two": ["/two"]})
    assert requests(client, 3, "/one")["status"] == [200, 200, 429]
    assert requests(client, 3, "/two")["status"] == [200, 200, 429]
    if policy == "redis":
        keys = redis.Redis.from_url(request.getfixturevalue("redis_url")).keys("gateway:*")
        assert sorted(key.decode().split("{")[0] for key in keys) == [
            "gateway:ratelimit::one:", "gateway:ratelimit::two:"]
