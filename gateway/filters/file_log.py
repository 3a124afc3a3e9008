"""file-log: each request's Kong log entry as one JSON line appended to a file (Kong's plugin).

The log phase puts the encoded line on a bounded queue (:mod:`gateway.ops.queue`);
the worker's writer greenlet appends the lines queued so far in one ``write``
run in gevent's thread pool, so neither the request greenlet nor the worker's
event loop waits on the disk. The file is opened as Kong opens it (write-only,
create, append, mode 0644); with ``reopen`` it is closed and opened again for
every write, so a file logrotate renamed is left and a new one created at
``path``. Several workers append to one file: each write is whole lines.
An entry that cannot be written (the directory is gone) is dropped with an
error line, as Kong's handler logs "failed to open the file".
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass

from gevent import get_hub

from gateway.config import Settings, boolean, setting
from gateway.filters.base import Filter
from gateway.filters.logentry import serialize
from gateway.jsoncodec import encode_json
from gateway.ops.queue import Queue, QueueSettings
from gateway.proxy.exchange import Exchange

log = logging.getLogger("gateway.file_log")

#: Kong's rule for ``path``: no space at either end, none of * & % ` \ anywhere.
VALID_PATH = re.compile(r"[^\s*&%\\`][^*&%\\`]*[^\s*&%\\`]")
FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND
MODE = 0o644
#: Lines written per write; lines waiting at most (past it the oldest are dropped).
BATCH = 1000
MAX_ENTRIES = 10000


def log_path(raw: str) -> str:
    """A file name Kong's schema accepts."""
    if not VALID_PATH.fullmatch(raw):
        raise ValueError("not a valid filename")
    return raw


@dataclass(frozen=True)
class FileLogConfig:
    path: str = setting("GATEWAY_FILE_LOG_PATH", log_path, None,
                        "file-log: the file each request's JSON log line is appended to.",
                        required=True)
    reopen: bool = setting("GATEWAY_FILE_LOG_REOPEN", boolean, "false",
                           "file-log: close and reopen the file for every write (logrotate).")


class FileLog(Filter):
    """Queues each request's log line; the worker's writer appends them."""

    NAME = "file-log"
    PRIORITY = 9  # Kong's
    VERSION = "1.0.0"
    Config = FileLogConfig

    def __init__(self, config: FileLogConfig, settings: Settings) -> None:
        super().__init__(config, settings)
        self.fd: int | None = None
        # No retries: a line that cannot be written now is dropped, as Kong drops it.
        self.queue = Queue(f"file-log:{config.path}", QueueSettings(
            max_batch_size=BATCH, max_coalescing_delay=0, max_entries=MAX_ENTRIES,
            max_retry_time=-1), self.write)

    def on_log(self, ex: Exchange) -> None:
        self.queue.put(encode_json(serialize(ex)) + b"\n")

    def write(self, lines: list[bytes]) -> None:
        """Append ``lines`` in one write, off the event loop; lines that cannot be written
        are dropped with Kong's error line."""
        try:
            get_hub().threadpool.apply(self._append, (b"".join(lines),))
        except OSError as exc:
            log.error("[file-log] %s: %s (%d entries lost)", exc.strerror, exc.filename,
                      len(lines))

    def _append(self, data: bytes) -> None:
        if self.fd is not None and self.config.reopen:
            os.close(self.fd)
            self.fd = None
        if self.fd is None:
            try:
                self.fd = os.open(self.config.path, FLAGS, MODE)
            except OSError as exc:
                raise OSError(exc.errno, f"failed to open the file: {exc.strerror}",
                              self.config.path) from None
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]
