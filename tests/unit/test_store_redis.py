"""gateway.store.redis: one client per Redis URL form, against real redis-servers; a Redis
that is down fails fast and says so without the client's repr or a secret."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest

from gateway.config import Settings, load
from gateway.filters.rate_limiting.counters import RedisCounters, Window
from gateway.store.cache import RedisCache, make_cache
from gateway.store.redis import RedisUnavailable, redis_client, redis_errors
from gateway.testing.servers import Process
from tests.support.fixture_server import closed_port_url


@pytest.fixture(scope="module")
def socket_url():
    """A redis-server listening on a unix socket only."""
    workdir = Path(tempfile.mkdtemp(prefix="gw-redis-unix-"))
    sock = workdir / "redis.sock"
    argv = [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", "0",
            "--unixsocket", str(sock), "--save", "", "--appendonly", "no"]
    process = Process("redis-unix", argv, cwd=str(workdir))
    deadline = time.monotonic() + 10
    while not sock.exists():
        assert time.monotonic() < deadline and process.popen.poll() is None, process.logs()
        time.sleep(0.02)
    yield f"unix://{sock}?db=2"
    process.stop()


def test_a_unix_socket_url_counts_in_that_database(socket_url):
    counters = RedisCounters(socket_url, [Window("minute", 2)], prefix="t:unix")
    now = time.time()
    assert [counters.take("a", now).allowed for _ in range(3)] == [True, True, False]
    assert redis_client(socket_url).connection_pool.connection_kwargs["db"] == 2
    assert redis_client(socket_url).keys("t:unix:*")


@pytest.mark.parametrize("url", [
    closed_port_url().replace("http://", "redis://:pw-secret@") + "/0",
    closed_port_url().replace("http://", "redis+sentinel://:pw-secret@") + "/mymaster/0",
    closed_port_url().replace("http://", "redis+cluster://:pw-secret@"),
])
def test_a_redis_that_refuses_fails_fast_and_plainly(url):
    started = time.monotonic()
    with pytest.raises(RedisUnavailable) as caught, redis_errors():
        redis_client(url).get("x")
    assert time.monotonic() - started < 0.5  # one retry, no backoff (redis-py's: ~3.7 s)
    assert "<redis." not in str(caught.value) and "pw-secret" not in str(caught.value)


def test_a_plugins_own_redis_url_is_the_cache_store(socket_url):
    settings = load(Settings, {"GATEWAY_UPSTREAM_URL": "http://127.0.0.1:1",
                               "GATEWAY_REDIS_URL": "redis://127.0.0.1:1/0"})
    cache = make_cache(settings, "t:cache:", 1024, url=socket_url)
    assert isinstance(cache, RedisCache) and cache.url == socket_url
    cache.set("k", b"v", 5)
    assert cache.get("k") == b"v"
    assert make_cache(settings, "t:cache:", 1024).url == settings.redis_url
