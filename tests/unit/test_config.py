"""Settings parsing: defaults, validation messages, unknown names, secrets, the README table."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass

import pytest

from gateway.__main__ import README, readme_with_table
from gateway.config import (
    ConfigError,
    ServerSettings,
    Settings,
    load,
    number,
    pairs,
    reject_unknown,
    setting,
)
from gateway.proxy.app import create_app

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


@pytest.mark.parametrize("url, message", [
    ("localhost:6379", "must be a redis://, rediss:// or unix:// URL"),
    ("redis://:pa#ss@host", "must be a redis://, rediss:// or unix:// URL"),
    ("redis://host:63x79/0", "has a bad port"),
    ("redis://host:6379/cache", "the path must be a database number"),
])
def test_bad_redis_urls_stop_the_start_without_the_password(url, message):
    with pytest.raises(ConfigError) as caught:
        load(Settings, {**BASE, "GATEWAY_REDIS_URL": url})
    assert str(caught.value).startswith(f"GATEWAY_REDIS_URL=<hidden>: {message}")
    assert url not in str(caught.value)


def test_good_redis_urls_load():
    for url in ("redis://127.0.0.1:6379/0", "rediss://:secret@cache.internal:6380",
                "unix:///run/redis.sock"):
        assert load(Settings, {**BASE, "GATEWAY_REDIS_URL": url}).redis_url == url


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


def test_readme_table_lists_every_setting():
    readme = README.read_text()
    assert readme_with_table(readme) == readme, "README settings table is stale: run `make docs`"
