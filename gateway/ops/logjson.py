"""JSON log lines: the error log's formatter and gunicorn's logging configuration.

Standard library, ujson and gunicorn's logger only, so ``gunicorn.conf.py`` can
use it in the master before gevent patches anything. The request id of the request being handled by
the current greenlet (a context variable) goes into every error-log line.
"""

from __future__ import annotations

import functools
import logging
import time
from contextvars import ContextVar
from typing import Any

from gunicorn.glogging import Logger

from gateway.jsoncodec import encode_json

#: The id of the request the current greenlet handles (greenlets have their own context).
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)


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
    """gunicorn's logger minus its access log, which the gateway replaces (gateway.ops.accesslog).

    With ``logconfig_dict`` set, gunicorn builds every request's access-log
    fields even though nothing logs them (about 5% of a worker's CPU under load).
    """

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        """Nothing: the gateway writes its own access line after the last byte."""
