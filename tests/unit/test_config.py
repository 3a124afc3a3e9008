"""Settings parsing: defaults, validation messages, unknown names, secrets, the docs' table."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass

import pytest

from gateway.config import (
    ConfigError,
    RedisTarget,
    ServerSettings,
    Settings,
    load,
    number,
    pairs,
    redis_target,
    reject_unknown,
    setting,
)
from gateway.docs import CONFIGURATION, with_settings_table
from gateway.server.app import create_app

BASE = {"GATEWAY_UPSTREAM_URL": "http://orders:8080"}


def test_defaults():
    settings = load(Settings, BASE)
    assert settings.upstream_urls == ("http://orders:8080",)
    assert (settings.connect_timeout, settings.read_timeout, settings.retries) == (5.0, 60.0, 2)
    assert settings.trusted_proxies == 0
    assert settings.preserve_host is False
    assert settings.redis_url is None
    server = load(ServerSettings, {})
    assert (server.bind, server.workers, server.keepalive) == ("127.0.0.1:8000", None, 75)


def test_settings_are_frozen():
    settings = load(Settings, BASE)
    with pytest.raises(FrozenInstanceError):
        settings.retries = 9


def test_several_upstreams_and_types():
    settings = load(Settings, {**BASE, "GATEWAY_UPSTREAM_URL": "http://a:1, https://b/api",
                               "GATEWAY_READ_TIMEOUT": "2.5", "GATEWAY_PRESERVE_HOST": "YES"})
    assert settings.upstream_urls == ("http://a:1", "https://b/api")
    assert settings.read_timeout == 2.5
    assert settings.preserve_host is True


@pytest.mark.parametrize(("name", "value", "message"), [
    ("GATEWAY_RETRIES", "-1", "GATEWAY_RETRIES='-1': must be an integer >= 0 and <= 10"),
    ("GATEWAY_RETRIES", "1.5", "must be an integer"),
    ("GATEWAY_CONNECT_TIMEOUT", "0", "GATEWAY_CONNECT_TIMEOUT='0': must be a number >= 0.001"),
    ("GATEWAY_UPSTREAM_URL", "http://a:99999", "has a bad port"),
    ("GATEWAY_UPSTREAM_URL", "ftp://a", "is not an http:// or https:// URL"),
    ("GATEWAY_UPSTREAM_URL", "http://a/?x=1", "must not have a query"),
    ("GATEWAY_LOG_LEVEL", "loud", "must be one of debug, info, warning, error"),
])
def test_bad_values_name_variable_value_and_rule(name, value, message):
    with pytest.raises(ConfigError) as caught:
        load(Settings, {**BASE, name: value})
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


FORMS = "must be a redis://, rediss://, unix://, redis+sentinel:// or redis+cluster:// URL"


@pytest.mark.parametrize("url, message", [
    ("localhost:6379", FORMS),
    ("redis://:pa#ss@host", FORMS),
    ("redis://host:63x79/0", "has a bad port"),
    ("redis://host:6379/cache", "the path must be a database number"),
    ("redis://:pw@a:1,b:2/0", "redis:// names one server"),
    ("redis+sentinel://:pw@h1:26379,h2:26379", "redis+sentinel:// needs the master's name"),
    ("redis+sentinel://h:26379/mymaster/x", "the path must be a database number"),
    ("redis+cluster://:pw@h:7000/3", "a Redis Cluster has database 0 only"),
    ("redis://h?sentinel_password=pw", "option 'sentinel_password' is not one of"),
    ("redis://h?pw", "the options after ? must be name=value pairs"),
    ("redis://h?timeout=0&x=pw", "option 'x' is not one of"),
    ("redis://h?timeout=pw", "the timeout option (seconds) must be a number"),
    ("rediss://h?ssl_verify=pw", "the ssl_verify option must be true or false"),
    ("unix://:pw@", "unix:// needs a socket path"),
])
def test_bad_redis_urls_stop_the_start_without_the_password(url, message):
    with pytest.raises(ConfigError) as caught:
        load(Settings, {**BASE, "GATEWAY_REDIS_URL": url})
    assert str(caught.value).startswith(f"GATEWAY_REDIS_URL=<hidden>: {message}")
    assert url not in str(caught.value)
    assert "pw" not in str(caught.value) and "pa#ss" not in str(caught.value)


def test_good_redis_urls_load():
    for url in ("redis://127.0.0.1:6379/0", "rediss://:secret@cache.internal:6380",
                "unix:///run/redis.sock", "redis+sentinel://h1:26379,h2/mymaster/2",
                "redis+cluster://10.0.0.1:7000,10.0.0.2:7001", "rediss://h?ssl_verify=false"):
        assert load(Settings, {**BASE, "GATEWAY_REDIS_URL": url}).redis_url == url


@pytest.mark.parametrize("url, target", [
    ("redis://127.0.0.1/3", RedisTarget("redis", (("127.0.0.1", 6379),), database=3)),
    ("rediss://user:p%40ss@cache:6380?server_name=redis.test&timeout=2",
     RedisTarget("redis", (("cache", 6380),), username="user", password="p@ss", tls=True,
                 server_name="redis.test", timeout=2.0)),
    ("unix:///run/redis.sock?db=1", RedisTarget("unix", path="/run/redis.sock", database=1)),
    ("redis+sentinel://:pw@s1,[::1]:26380/my%2Fmaster/1?sentinel_password=spw",
     RedisTarget("sentinel", (("s1", 26379), ("::1", 26380)), database=1, password="pw",
                 service="my/master", sentinel_password="spw")),
    ("rediss+cluster://n1:7000,n2?ssl_verify=false",
     RedisTarget("cluster", (("n1", 7000), ("n2", 6379)), tls=True, tls_verify=False)),
])
def test_redis_url_forms_read_back_from_their_own_url(url, target):
    assert redis_target(url) == target
    assert redis_target(target.url()) == target


def test_a_redis_target_shows_no_secret():
    target = redis_target("redis+sentinel://u:pw@s1:26379/mymaster/0?sentinel_password=spw")
    assert target.shown() == "redis+sentinel://s1:26379/mymaster/0"
    assert "pw" not in repr(target)


def test_urls_with_credentials_are_refused_without_echoing_them():
    with pytest.raises(ConfigError) as caught:
        load(Settings, {**BASE, "GATEWAY_UPSTREAM_URL": "http://a:1,http://bob:s3cret@b:2"})
    assert str(caught.value).startswith("GATEWAY_UPSTREAM_URL=<hidden>: a URL with a user")
    assert "s3cret" not in str(caught.value)


def test_secret_values_never_appear_in_errors():
    @dataclass(frozen=True)
    class WithSecret:
        token: int = setting("GATEWAY_TOKEN", number(int), None, "a secret", secret=True)

    with pytest.raises(ConfigError) as caught:
        load(WithSecret, {"GATEWAY_TOKEN": "hunter2"})
    assert str(caught.value) == "GATEWAY_TOKEN=<hidden>: must be an integer >= 0"


def test_unknown_names_are_rejected_with_a_hint():
    known = {"GATEWAY_READ_TIMEOUT"}
    reject_unknown({"GATEWAY_READ_TIMEOUT": "1", "OTHER": "x"}, known)
    with pytest.raises(ConfigError, match=r"GATEWAY_READ_TIMOUT: unknown setting \(did you mean"):
        reject_unknown({"GATEWAY_READ_TIMOUT": "1"}, known)


def test_pairs_parser():
    assert pairs(":")("A:1, B: two ,A:3") == (("A", "1"), ("B", "two"), ("A", "3"))
    with pytest.raises(ValueError, match="name:value"):
        pairs(":")("novalue")


def test_unknown_filter_lists_known_ones():
    with pytest.raises(ConfigError, match=r"unknown filter 'nope'; known: .*response-headers"):
        create_app({**BASE, "GATEWAY_FILTERS": "nope"})


def test_filter_settings_are_validated():
    with pytest.raises(ConfigError, match="GATEWAY_TERMINATION_STATUS='42'"):
        create_app({**BASE, "GATEWAY_FILTERS": "request-termination",
                    "GATEWAY_TERMINATION_STATUS": "42"})


def test_the_configuration_page_table_lists_every_setting():
    page = CONFIGURATION.read_text()
    assert with_settings_table(page) == page, "docs settings table is stale: run `make docs`"
