"""gunicorn settings for the gateway, from GATEWAY_* environment variables.

Run: ``GATEWAY_UPSTREAM_URL=http://orders:8080 gunicorn -c gunicorn.conf.py gateway.wsgi:app``

This file runs in the gunicorn master, before any worker forks and before
gevent patches the standard library in the worker. It must therefore import
nothing that pulls in urllib3, ssl or gevent: ``gateway.config`` is standard
library only. The whole configuration (proxy and filters) is checked in a
short-lived child process, so a bad variable stops the start with one line
instead of a worker that crashes and is respawned forever.

gunicorn runs this file again on SIGHUP (reload). The environment of a running
master cannot change, so besides the declarative file the check can only fail
then if the code on disk changed; the master then prints the same one-line
error and stops gracefully (in-flight requests finish, exit status 2) rather
than spawn workers that cannot boot. The declarative file is copied before it
is checked and workers read the copy that passed: on reload, a file that no
longer validates is reported and the previous copy stays in use (Kong's
reload does not take a running node down either).
"""

import os
import subprocess
import sys
import tempfile

from gateway.config import ConfigError, ServerSettings, load
from gateway.ops import fdlimit, metricsdir
from gateway.ops.header_names import unambiguous
from gateway.ops.logjson import logging_config
from gateway.routing.declarative import SNAPSHOT_ENV
from gateway.store import shared

# Set by on_starting: this file is being re-read by a running master (SIGHUP).
_MASTER = "_GATEWAY_MASTER_PID"
_reloading = os.environ.get(_MASTER) == str(os.getpid())

try:
    _server = load(ServerSettings, os.environ)
except ConfigError as exc:
    print(f"gateway: configuration error: {exc}", file=sys.stderr)
    sys.exit(2)  # as `python -m gateway check`: systemd's RestartPreventExitStatus=2

# Without the metrics directory: the check must not leave metric files in it; without the
# workers' copy of the declarative file: the check reads the file or the copy it is given.
_check_env = {k: v for k, v in os.environ.items() if k not in (metricsdir.ENV, SNAPSHOT_ENV)}


def _check(snapshot):
    """Exit status of ``python -m gateway check``, reading the declarative file from
    ``snapshot`` (a copy) when given."""
    env = dict(_check_env, **({SNAPSHOT_ENV: snapshot} if snapshot else {}))
    # Its "configuration OK" and warnings stay out of the JSON logs (workers log the
    # warnings); its error line is printed.
    done = subprocess.run([sys.executable, "-m", "gateway", "check"], env=env, check=False,
                          capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stderr, end="", file=sys.stderr)
    return done.returncode


def _snapshot():
    """A private copy of GATEWAY_DECLARATIVE_CONFIG, or None (no file, or unreadable: the
    check then reports it). Workers read the copy that passed the check, never the file."""
    path = os.environ.get("GATEWAY_DECLARATIVE_CONFIG", "").strip()
    try:
        with open(path, "rb") as source:
            content = source.read()
    except OSError:
        return None
    fd, copy = tempfile.mkstemp(prefix="gateway-declarative-")
    with os.fdopen(fd, "wb") as target:
        target.write(content)
    return copy


_previous = os.environ.get(SNAPSHOT_ENV)
_candidate = _snapshot()
_status = _check(_candidate)
if _status == 0 and _candidate:
    os.environ[SNAPSHOT_ENV] = _candidate
    if _previous:
        os.unlink(_previous)
elif _status != 0:
    if _candidate:
        os.unlink(_candidate)
    if _reloading and _previous and _check(_previous) == 0:
        # As Kong's reload: a file that no longer validates leaves the previous one in use.
        print("gateway: reload: GATEWAY_DECLARATIVE_CONFIG does not validate (see above); "
              "the workers keep the previous configuration", file=sys.stderr)
        _status = 0
if _status != 0:
    if not _reloading:
        sys.exit(_status)

    def on_reload(server):
        """The code on disk rejects this environment: stop gracefully, spawn nothing."""
        server.halt("configuration error on reload (see the line above)", _status)

# Always gevent (the gateway is I/O bound and overlaps upstream and third-party calls),
# in a worker that closes idle keep-alive connections when its slots run short.
worker_class = "gateway.ops.worker.GatewayWorker"
bind = [_server.bind]
workers = _server.workers or os.cpu_count() or 1
worker_connections = _server.worker_connections
_fd_warning = fdlimit.raise_open_files(fdlimit.needed(worker_connections))
if _fd_warning:
    print(f"gateway: warning: {_fd_warning}", file=sys.stderr)
timeout = _server.timeout
graceful_timeout = _server.graceful_timeout
keepalive = _server.keepalive
# Never preload: objects made before gevent patches the worker keep real locks.
preload_app = False
# gunicorn 27's control socket defaults to one fixed path per user, which two
# gateways on a host would fight over; operate with signals (HUP, TERM, TTIN).
control_socket_disable = True
# Trust in X-Forwarded-* belongs to GATEWAY_TRUSTED_PROXIES (werkzeug's ProxyFix)
# alone: stop gunicorn from trusting X-Forwarded-Proto from loopback by default.
forwarded_allow_ips = ""
secure_scheme_headers = {}
# Header names with `_` (Kong's key-auth finds `api_key:`) are mapped into the environ,
# and pre_request first drops every such spelling that could pass for another header.
header_map = "dangerous"


def pre_request(worker, req):
    """Worker, per request, before the environ is built: see gateway.ops.header_names."""
    req.headers = unambiguous(req.headers)


# The gateway writes its own JSON access log on stdout (GATEWAY_ACCESS_LOG); every
# other log line, gunicorn's included, is JSON on stderr.
accesslog = None
logconfig_dict = logging_config()
logger_class = "gateway.ops.logjson.GunicornLogger"


def on_starting(server):
    """Master, once, before any worker forks: an empty directory for the workers' metrics,
    and the node's shared memory (rate-limiting's local counters), which every worker
    inherits and which lives as long as the master (reloads and worker restarts keep it)."""
    os.environ[metricsdir.ENV] = metricsdir.prepare(_server.metrics_dir)
    shared.reserve(shared.RATE_LIMITING, 16 * _server.ratelimit_local_slots)
    os.environ[_MASTER] = str(os.getpid())


def child_exit(server, worker):
    """Master: a worker exited (any way): drop its live gauges from the aggregate."""
    metricsdir.mark_process_dead(os.environ[metricsdir.ENV], worker.pid)


def on_exit(server):
    """Master, at the very end: delete the metrics directory if it was a temporary one."""
    if _server.metrics_dir is None:
        metricsdir.remove(os.environ[metricsdir.ENV])
    if os.environ.get(SNAPSHOT_ENV):
        os.unlink(os.environ[SNAPSHOT_ENV])
