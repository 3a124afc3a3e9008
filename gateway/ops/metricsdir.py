"""The directory where gunicorn workers keep their Prometheus metrics (multiprocess mode).

Used by gunicorn.conf.py's hooks in the master, so standard library only:
prometheus_client imports urllib.request, hence ssl, which must not be imported
before gevent patches the workers (MonkeyPatchWarning).
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile

#: The variable prometheus_client reads, in the workers, to switch to multiprocess mode.
ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare(directory: str | None) -> str:
    """``directory`` emptied of metric files (created if missing), or a new temporary one."""
    if directory is None:
        return tempfile.mkdtemp(prefix="gateway-metrics-")
    os.makedirs(directory, exist_ok=True)
    for path in glob.glob(os.path.join(directory, "*.db")):
        os.remove(path)
    return directory


def mark_process_dead(directory: str, pid: int) -> None:
    """Drop a dead worker's live gauges (in-flight, pool, breaker); its counters stay summed.

    The same as prometheus_client.multiprocess.mark_process_dead, without its import.
    """
    for path in glob.glob(os.path.join(directory, f"gauge_live*_{pid}.db")):
        os.remove(path)


def remove(directory: str) -> None:
    """Delete a temporary metrics directory when the master exits."""
    shutil.rmtree(directory, ignore_errors=True)
