"""Kong's health checks of upstream targets: counters, states, passive reports, active probes.

The facts are lua-resty-healthcheck's (3.1, which Kong 3.10 uses), as Kong drives it
(kong/runloop/balancer/healthcheckers.lua):

- Each target has four counters (successes, HTTP failures, TCP failures, timeouts),
  shared by the active and the passive checks; each report counts against the limit of
  the check that made it, and a limit of 0 ignores the report.
- A counted success clears the failure counters; a counted failure clears the success
  counter. A counter reaching its limit makes the target healthy (successes) or
  unhealthy (any failure counter). A fully healthy target ignores success reports, a fully
  unhealthy one failure reports; in between it is "mostly" healthy or unhealthy and keeps
  its side. So with ``healthy.successes`` at 0 nothing clears the failure counters: the
  failures need not be consecutive.
- Targets start healthy. Active probes run every ``healthy.interval`` on the targets on
  the healthy side, every ``unhealthy.interval`` on the others (0: not probed), at most
  ``concurrency`` at a time; an HTTP probe is ``GET http_path HTTP/1.0`` and its status
  line is all that is read.
- The upstream uses health checks when an active interval or a passive failure limit is
  above 0; the balancer is healthy while the healthy share of the weight is above
  ``threshold`` percent. Else Kong's 503 ``failure to get a peer from the ring-balancer``.

Kong keeps the state in shared memory for all workers; here each worker has its own and
runs its own probes (one greenlet per upstream, started after the fork).
"""

from __future__ import annotations

import functools
import logging
import re
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import gevent
from gevent.pool import Pool

log = logging.getLogger("gateway.proxy.healthcheck")

#: Kong's 503 when the balancer has no healthy target (kong/runloop/balancer/init.lua).
NO_PEER = "failure to get a peer from the ring-balancer"
#: The counters of a target (lua-resty-healthcheck's CTR_SUCCESS, CTR_HTTP, CTR_TCP,
#: CTR_TIMEOUT).
SUCCESS, HTTP, TCP, TIMEOUT = range(4)
#: Kong's states of a target in kong_upstream_target_health.
HEALTHY, UNHEALTHY, OFF, DNS_ERROR = "healthy", "unhealthy", "healthchecks_off", "dns_error"
_STATUS_LINE = re.compile(rb"HTTP/\d+\.\d+\s+(\d+)", re.IGNORECASE)
#: Longest status line read from a probe's answer.
_MAX_LINE = 8192


@dataclass(frozen=True)
class Rules:
    """The limits and statuses of one kind of check (active or passive)."""

    healthy_statuses: frozenset[int]
    successes: int
    unhealthy_statuses: frozenset[int]
    http_failures: int
    tcp_failures: int
    timeouts: int

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Rules:
        """From Kong's ``healthchecks.active`` or ``.passive`` record, defaults filled in."""
        healthy, unhealthy = record["healthy"], record["unhealthy"]
        return cls(frozenset(healthy["http_statuses"]), healthy["successes"],
                   frozenset(unhealthy["http_statuses"]), unhealthy["http_failures"],
                   unhealthy["tcp_failures"], unhealthy["timeouts"])

    def limit(self, counter: int) -> int:
        """The limit of ``counter`` (SUCCESS, HTTP, TCP, TIMEOUT)."""
        return (self.successes, self.http_failures, self.tcp_failures, self.timeouts)[counter]

    def counter_of(self, status: int) -> int | None:
        """The counter an HTTP status counts on: SUCCESS, HTTP (0, no valid status line,
        too), or None for a status in neither list (ignored)."""
        if status in self.healthy_statuses:
            return SUCCESS
        if status in self.unhealthy_statuses or status == 0:
            return HTTP
        return None


@dataclass(frozen=True)
class Probe:
    """How active probes are made (``healthchecks.active`` without its limits)."""

    type: str
    timeout: float
    concurrency: int
    http_path: str
    https_sni: str | None
    https_verify_certificate: bool
    #: Header lines sent with each HTTP probe, in order.
    headers: tuple[tuple[str, str], ...]
    healthy_interval: float
    unhealthy_interval: float


@dataclass(frozen=True)
class HealthChecks:
    """An upstream's ``healthchecks`` record."""

    active: Rules
    passive: Rules
    probe: Probe
    threshold: float

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> HealthChecks:
        """From Kong's record, checked and with every default filled in."""
        active = record["active"]
        headers = tuple((name, value) for name, values in (active["headers"] or {}).items()
                        for value in values)
        probe = Probe(active["type"], active["timeout"], active["concurrency"],
                      active["http_path"], active["https_sni"],
                      active["https_verify_certificate"], headers,
                      active["healthy"]["interval"], active["unhealthy"]["interval"])
        return cls(Rules.from_record(active), Rules.from_record(record["passive"]), probe,
                   record["threshold"])

    @property
    def in_use(self) -> bool:
        """Kong's ``is_upstream_using_healthcheck``: an active interval or a passive failure
        limit above 0. Otherwise the record changes nothing."""
        passive = self.passive
        return self.probing or bool(passive.tcp_failures or passive.timeouts
                                    or passive.http_failures)

    @property
    def probing(self) -> bool:
        """Active probes run (an interval above 0)."""
        return bool(self.probe.healthy_interval or self.probe.unhealthy_interval)


class TargetHealth:
    """The health of one target address (host:port), shared by its entries in the ring."""

    __slots__ = ("counts", "dns_error", "host", "port", "state")

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        #: lua-resty-healthcheck's internal health: healthy, mostly_healthy, unhealthy,
        #: mostly_unhealthy.
        self.state = "healthy"
        self.counts = [0, 0, 0, 0]
        #: The target's name did not resolve when last tried.
        self.dns_error = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def up(self) -> bool:
        """On the healthy side: the balancer may pick it."""
        return self.state in ("healthy", "mostly_healthy")

    def record(self, counter: int, limit: int, check: str) -> None:
        """Count one report on ``counter`` against ``limit`` (0: ignored), as
        lua-resty-healthcheck's incr_counter; ``check`` (active, passive) is for the log."""
        if limit == 0:
            return
        report = "healthy" if counter == SUCCESS else "unhealthy"
        if report == self.state:
            return
        counts = self.counts
        counts[counter] = count = min(counts[counter] + 1, 255)
        if counter == SUCCESS:
            counts[HTTP] = counts[TCP] = counts[TIMEOUT] = 0
        else:
            counts[SUCCESS] = 0
        new = self.state
        if count >= limit:
            new = report
        elif self.state == "healthy" and any(counts[HTTP:]):
            new = "mostly_healthy"
        elif self.state == "unhealthy" and counts[SUCCESS]:
            new = "mostly_unhealthy"
        if (new in ("healthy", "unhealthy")) and new != self.state:
            log.warning("upstream target %s is %s (%s check)", self.address, new, check)
        self.state = new

    def record_status(self, status: int, rules: Rules, check: str) -> None:
        """Count an HTTP status as ``rules`` say (ignored when in neither list)."""
        counter = rules.counter_of(status)
        if counter is not None:
            self.record(counter, rules.limit(counter), check)

    @property
    def shown(self) -> str:
        """Kong's state in kong_upstream_target_health: healthy, unhealthy or dns_error
        (a target whose upstream has no checks in use is healthchecks_off)."""
        if self.dns_error:
            return DNS_ERROR
        return HEALTHY if self.up else UNHEALTHY


def balancer_healthy(healths: Iterable[TargetHealth], threshold: float) -> bool:
    """Kong's balancer health: the share of the targets' weight that is healthy is above
    ``threshold`` percent. ``healths`` holds one entry per share of weight (the ring)."""
    total = available = 0
    for health in healths:
        total += 1
        available += health.up
    return total > 0 and available * 100 / total > threshold


class Checker:
    """The active probes of one upstream's targets, run by a greenlet of this worker."""

    def __init__(self, name: str, checks: HealthChecks,
                 targets: Iterable[TargetHealth]) -> None:
        self.name = name
        self.checks = checks
        self.targets = list(targets)
        self.greenlets: list[Any] = []

    def start(self) -> None:
        """Start the probe loops (one per interval above 0), once, in this worker."""
        if self.greenlets:
            return
        probe = self.checks.probe
        for healthy, interval in ((True, probe.healthy_interval),
                                  (False, probe.unhealthy_interval)):
            if interval:
                self.greenlets.append(gevent.spawn(self._loop, healthy, interval))

    def stop(self) -> None:
        """End the probe loops (tests)."""
        for greenlet in self.greenlets:
            greenlet.kill(block=False)
        self.greenlets.clear()

    def _loop(self, healthy: bool, interval: float) -> None:
        while True:
            gevent.sleep(interval)
            try:
                self.check(healthy)
            except Exception:  # a probe loop must outlive any bug in one round
                log.exception("health checks of upstream %s failed", self.name)

    def check(self, healthy: bool) -> None:
        """One round: probe the targets on the ``healthy`` side (or the other), at most
        ``concurrency`` at a time."""
        due = [t for t in self.targets if t.up == healthy]
        if not due:
            return
        Pool(self.checks.probe.concurrency).map(self.probe, due)

    def probe(self, target: TargetHealth) -> None:
        """Probe one target and count the result (active check)."""
        rules = self.checks.active
        counter, status = probe_target(self.checks.probe, target.host, target.port)
        target.dns_error = counter == DNS_ERROR
        if target.dns_error:
            counter = TCP
        if status is not None:
            target.record_status(status, rules, "active")
        else:
            target.record(counter, rules.limit(counter), "active")


def probe_target(probe: Probe, host: str, port: int) -> tuple[Any, int | None]:
    """(counter, None) for a failed probe (TCP, TIMEOUT, or DNS_ERROR: the name did not
    resolve), (SUCCESS, None) for a tcp probe that connected, (None, status) for an HTTP
    answer (status 0: no valid status line). The Host header and the default SNI are the
    target's host name (Kong's, without a port)."""
    try:
        sock = socket.create_connection((host, port), timeout=probe.timeout)
    except socket.gaierror:
        return DNS_ERROR, None
    except TimeoutError:
        return TIMEOUT, None
    except OSError:
        return TCP, None
    try:
        if probe.type == "tcp":
            return SUCCESS, None
        if probe.type == "https":
            sock = _tls(sock, probe, host)
        lines = [f"GET {probe.http_path} HTTP/1.0"]
        lines += [f"{name}: {value}" for name, value in probe.headers]
        lines.append(f"Host: {host}")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        first = sock.makefile("rb").readline(_MAX_LINE)
    except TimeoutError:
        return TIMEOUT, None
    except OSError:  # refused TLS, reset (ssl.SSLError is an OSError)
        return TCP, None
    finally:
        sock.close()
    found = _STATUS_LINE.match(first)
    return None, int(found.group(1)) if found else 0


def _tls(sock: socket.socket, probe: Probe, host_name: str) -> ssl.SSLSocket:
    """The TLS handshake of an https probe: SNI ``https_sni`` or the target's host name."""
    context = _tls_context(probe.https_verify_certificate)
    return context.wrap_socket(sock, server_hostname=probe.https_sni or host_name)


@functools.cache
def _tls_context(verify: bool) -> ssl.SSLContext:
    """The probes' TLS settings, made once (loading the CA store costs milliseconds)."""
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
