"""JSON log lines: the error log's formatter and gunicorn's logging configuration.

Standard library, ujson and gunicorn's logger only, so ``gunicorn.conf.py`` can
use it in the master before gevent patches anything. The request id of the request being handled by
the current greenlet (a context variable) goes into every error-log line.
gunicorn's own messages quote the client's request line, header lines and
values when it refuses a request: they are scrubbed before they are written.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from contextvars import ContextVar
from typing import Any

from gunicorn.glogging import Logger

from gateway.jsoncodec import encode_json

#: The id of the request the current greenlet handles (greenlets have their own context).
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
#: Put in place of the client's data in gunicorn's messages.
REDACTED = "<redacted>"
# gunicorn quotes what it refuses with %r: the request line, a header line, name or value.
_QUOTED = re.compile(r"b?'(?:[^'\\]|\\.)*'" r'|b?"(?:[^"\\]|\\.)*"')
# A query string in an unquoted request target ("Error handling request GET /k?apikey=1").
_QUERY = re.compile(r"(?<=\S)\?\S+")
# Header names gunicorn itself puts in its messages: not the client's data, worth keeping.
_GUNICORN_NAMES = frozenset({"'CONTENT-LENGTH'", "'TRANSFER-ENCODING'", "'HOST'", "'CONTENT-TYPE'"})


def scrub(text: str) -> str:
    """``text`` without the client's data: quoted text and query strings are redacted."""
    text = _QUOTED.sub(lambda m: m[0] if m[0] in _GUNICORN_NAMES else REDACTED, text)
    return _QUERY.sub("?" + REDACTED, text)


class ScrubClientData(logging.Filter):
    """Scrub gunicorn's error-log records (message and traceback) of the client's data."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = scrub(record.getMessage()), ()
        if record.exc_info:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


_SCRUB = ScrubClientData()


@functools.lru_cache(maxsize=4)
def _utc_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def utc_timestamp(seconds: float) -> str:
    """``2026-11-25T06:30:00.123Z`` for a time.time() value (the second formatted once)."""
    return f"{_utc_second(int(seconds))}.{int(seconds % 1 * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, pid, message, request id, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": utc_timestamp(record.created), "level": record.levelname.lower(),
            "logger": record.name, "pid": record.process, "message": record.getMessage()}
        request_id = REQUEST_ID.get()
        if request_id:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return encode_json(entry).decode()


def logging_config() -> dict[str, Any]:
    """gunicorn's ``logconfig_dict``: every log line JSON on stderr; gunicorn's access log off.

    The access log is the gateway's own (gateway.ops.accesslog, on stdout).
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json",
                                "stream": "ext://sys.stderr"}},
        "root": {"level": "INFO", "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
            "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
        },
    }


class GunicornLogger(Logger):
    """gunicorn's logger minus its access log, which the gateway replaces (gateway.ops.accesslog),
    and with the client's data scrubbed from its error log (ScrubClientData).

    With ``logconfig_dict`` set, gunicorn builds every request's access-log
    fields even though nothing logs them (about 5% of a worker's CPU under load).
    """

    #: gunicorn's access log is off whatever the logging configuration says: its workers
    #: then skip timing each request for it.
    access_log_enabled = False

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        self.error_log.addFilter(_SCRUB)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        """Nothing: the gateway writes its own access line after the last byte."""
