"""http-log: each request's Kong log entry sent to an HTTP collector, in the background (Kong's).

The log phase serialises the entry (:mod:`gateway.filters.logentry`) and puts
it on the filter's queue (:mod:`gateway.ops.queue`, Kong's queue settings and
defaults); the worker's sender greenlet POSTs (or PUTs, PATCHes) batches to
``http_endpoint`` through the external-service client: with
``queue.max_batch_size`` 1 the body is the entry itself, otherwise a JSON
array of the batch's entries, as Kong's handler sends them. A collector that is
down or slow delays nothing but its own queue: retries back off until
``max_retry_time``; past ``max_entries`` the oldest entries are dropped (a
warning says so).

Headers sent: Content-Type (``content_type``), Authorization (Basic, from user
info in ``http_endpoint``), then ``headers`` (which may not name Host,
Content-Length nor Content-Type, nor Authorization beside user info; Kong's
schema rules). ``keepalive``: connections to the collector are pooled between
batches, and dropped before a batch that comes after more than ``keepalive``
milliseconds of idleness (Kong's idle keep-alive time), so a collector that
closes idle connections is not met with a stale one.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from time import monotonic
from urllib.parse import unquote, urlsplit, urlunsplit

from gateway.config import Settings, choice, number, pairs, setting
from gateway.filters.base import Filter
from gateway.filters.logentry import serialize
from gateway.jsoncodec import encode_json
from gateway.ops.queue import Queue, QueueSettings
from gateway.proxy.exchange import Exchange
from gateway.proxy.uri import DEFAULT_PORTS
from gateway.services import Service, ServiceOptions
from gateway.services.client import Answer
from gateway.services.errors import BadAnswer, CallFailed

#: Header names ``headers`` may not set (Kong's schema).
RESERVED_HEADERS = ("host", "content-length", "content-type")
_Q = "GATEWAY_HTTP_LOG_QUEUE_"


def endpoint(raw: str) -> str:
    """An http:// or https:// URL with a host; user info allowed (sent as Basic auth)."""
    parts = urlsplit(raw)
    try:
        parts.port  # noqa: B018
    except ValueError:
        raise ValueError("must be an http:// or https:// URL with a host (bad port)") from None
    if parts.scheme not in ("http", "https") or not parts.hostname \
            or any(c.isspace() for c in raw):
        raise ValueError("must be an http:// or https:// URL with a host")
    return raw


@dataclass(frozen=True)
class HttpLogConfig:
    http_endpoint: str = setting(
        "GATEWAY_HTTP_LOG_ENDPOINT", endpoint, None,
        "http-log: the collector's URL each request's log entry is sent to (user info in it "
        "becomes Basic Authorization).", required=True, secret=True)
    method: str = setting("GATEWAY_HTTP_LOG_METHOD", choice("post", "put", "patch"), "POST",
                          "http-log: the method of the requests to the collector.")
    content_type: str = setting(
        "GATEWAY_HTTP_LOG_CONTENT_TYPE",
        choice("application/json", "application/json; charset=utf-8"), "application/json",
        "http-log: the Content-Type sent to the collector.")
    timeout: float = setting("GATEWAY_HTTP_LOG_TIMEOUT", number(float, 1), "10000",
                             "http-log: milliseconds a call to the collector may take.")
    keepalive: float = setting(
        "GATEWAY_HTTP_LOG_KEEPALIVE", number(float, 0), "60000",
        "http-log: milliseconds a pooled connection to the collector may stay idle.")
    headers: tuple[tuple[str, str], ...] = setting(
        "GATEWAY_HTTP_LOG_HEADERS", pairs(":"), "",
        "http-log: headers sent to the collector, name:value,name:value.", secret=True)
    queue_max_batch_size: int = setting(
        _Q + "MAX_BATCH_SIZE", number(int, 1, 1000000), "1",
        "http-log: entries per request to the collector (more than 1: a JSON array).")
    queue_max_coalescing_delay: float = setting(
        _Q + "MAX_COALESCING_DELAY", number(float, 0, 3600), "1",
        "http-log: seconds a batch waits for more entries after its first.")
    queue_max_entries: int = setting(
        _Q + "MAX_ENTRIES", number(int, 1, 1000000), "10000",
        "http-log: entries a worker keeps waiting; past it the oldest are dropped.")
    queue_max_bytes: int | None = setting(
        _Q + "MAX_BYTES", number(int, 1), None,
        "http-log: bytes of entries a worker keeps waiting (unset: no byte limit).")
    queue_max_retry_time: float = setting(
        _Q + "MAX_RETRY_TIME", number(float, -1), "60",
        "http-log: seconds a failing batch is retried before it is dropped.")
    queue_initial_retry_delay: float = setting(
        _Q + "INITIAL_RETRY_DELAY", number(float, 0.001, 1000000), "0.01",
        "http-log: seconds before the first retry; doubled for each next one.")
    queue_max_retry_delay: float = setting(
        _Q + "MAX_RETRY_DELAY", number(float, 0.001, 1000000), "60",
        "http-log: longest wait between two retries, in seconds.")
    queue_concurrency_limit: int = setting(
        _Q + "CONCURRENCY_LIMIT", number(int, -1, 1), "1",
        "http-log: 1 (one sender per worker) or -1 (each entry sent at once, unqueued).")

    def check(self) -> None:
        """ValueError naming what Kong's schema refuses across fields."""
        if self.queue_concurrency_limit not in (-1, 1):
            raise ValueError("queue.concurrency_limit: expected one of: -1, 1")
        names = {name.lower() for name, _ in self.headers}
        if any(c in item for pair in self.headers for item in pair for c in "\r\n\0"):
            raise ValueError("headers: a header name or value holds CR, LF or NUL")
        for reserved in RESERVED_HEADERS:
            if reserved in names:
                raise ValueError(f"headers: cannot contain '{reserved.title()}' header")
        if any(value == "" for _, value in self.headers):
            raise ValueError("headers: length must be at least 1")
        if urlsplit(self.http_endpoint).username is not None and "authorization" in names:
            raise ValueError("specifying both an 'Authorization' header and user info in "
                             "'http_endpoint' is not allowed")

    @property
    def queue(self) -> QueueSettings:
        return QueueSettings(
            self.queue_max_batch_size, self.queue_max_coalescing_delay, self.queue_max_entries,
            self.queue_max_bytes, self.queue_max_retry_time, self.queue_initial_retry_delay,
            self.queue_max_retry_delay, self.queue_concurrency_limit)


def _reason(error: CallFailed) -> str:
    """Why a call failed, as Kong's HTTP client says it: "timeout" for any timeout."""
    return "timeout" if "timed out" in str(error) else str(error)


class HttpLog(Filter):
    """Queues each request's log entry; the worker's sender delivers them in batches."""

    NAME = "http-log"
    PRIORITY = 12  # Kong's
    VERSION = "1.0.0"
    Config = HttpLogConfig

    def __init__(self, config: HttpLogConfig, settings: Settings) -> None:
        super().__init__(config, settings)
        config.check()
        parts = urlsplit(config.http_endpoint)
        netloc = parts.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"
        if parts.port is not None:
            netloc += f":{parts.port}"
        #: The endpoint without user info; the path "/" when it has none (Kong's).
        self.url = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        #: host:port as Kong's failure messages name the collector.
        self.address = f"{parts.hostname}:{parts.port or DEFAULT_PORTS[parts.scheme]}"
        self.headers = {"Content-Type": config.content_type}
        if parts.username is not None:
            userinfo = unquote(parts.username) + (
                f":{unquote(parts.password)}" if parts.password is not None else "")
            self.headers["Authorization"] = "Basic " + base64.b64encode(
                userinfo.encode()).decode()
        for name, value in config.headers:
            self.headers.setdefault(name, value)
        self.batched = config.queue_max_batch_size > 1
        # Every status reaches _answer, which fails 300 and more with Kong's words.
        self.service = Service(self.NAME, settings, ServiceOptions(
            timeout=config.timeout / 1000, error_statuses=frozenset()))
        self.queue = Queue(f"http-log:{netloc}{parts.path}", config.queue, self.send)
        #: monotonic() time of the last batch sent (the pool's idle time starts there).
        self.last_sent = float("-inf")

    def on_log(self, ex: Exchange) -> None:
        self.queue.put(encode_json(serialize(ex)))

    def send(self, batch: list[bytes]) -> None:
        """POST one batch to the collector; raises saying why it failed, in Kong's handler's
        words (the queue logs them after "handler could not process entries: " and
        retries)."""
        body = b"[" + b",".join(batch) + b"]" if self.batched else batch[0]
        now = monotonic()
        if now - self.last_sent > self.config.keepalive / 1000:
            self.service.client.pool.clear()  # idle past keepalive: open a fresh connection
        self.last_sent = now
        try:
            self.service.call(self.config.method.upper(), self.url, self._answer, body,
                              self.headers).get()
        except CallFailed as exc:
            raise CallFailed(f"failed request to {self.address}: {_reason(exc)}") from None

    def _answer(self, answer: Answer) -> int:
        """Below 300 is a success, its body read and discarded; else a failure naming the
        status and the collector's body (Kong's)."""
        if answer.status < 300:
            return answer.status
        raise BadAnswer(f"request to {self.address} returned status code {answer.status} "
                        f"and body {answer.body.decode('utf-8', 'replace')}")
