"""ip-restriction: allow or deny clients by address or CIDR range (Kong's plugin of that name).

The client address is the one ``GATEWAY_TRUSTED_PROXIES`` lets the gateway
believe (``ex.client_ip``): with no trusted hop, the peer of the connection, so a
forged X-Forwarded-For changes nothing. As in Kong's handler, ``deny`` is checked
first, then ``allow``: an address in both is refused. Lists are parsed once, at
start; a request costs one address parse and a few integer comparisons.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from functools import lru_cache

from gateway.config import ConfigError, number, setting, text
from gateway.filters.base import Filter
from gateway.proxy.exchange import Exchange

log = logging.getLogger("gateway.filters")
#: Kong's answer when the peer has no IP address (a unix socket).
NO_ADDRESS = "Cannot identify the client IP address, unix domain sockets are not supported."
#: Distinct client addresses whose parsed form is kept per worker.
ADDRESS_CACHE = 4096

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(raw: str) -> tuple[Network, ...]:
    """A comma-separated list of IP addresses and CIDR ranges (IPv4 and IPv6); every bad
    entry is named, as Kong's schema names each."""
    parsed, bad = [], []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        try:
            parsed.append(ip_or_cidr(item))
        except ValueError as exc:
            bad.append(str(exc))
    if bad:
        raise ValueError("; ".join(bad))
    return tuple(parsed)


def ip_or_cidr(item: str) -> Network:
    """One IP address or CIDR range; ValueError in Kong's words (typedefs.ip_or_cidr)."""
    try:
        return ipaddress.ip_network(item, strict=False)
    except ValueError:
        raise ValueError(f"invalid ip or cidr range: '{item}'") from None


@dataclass(frozen=True)
class IpRestrictionConfig:
    allow: tuple[Network, ...] = setting(
        "GATEWAY_IP_RESTRICTION_ALLOW", networks, "",
        "ip-restriction: comma-separated IPs or CIDR ranges (IPv4, IPv6) allowed; any other "
        "client is refused. Set this or GATEWAY_IP_RESTRICTION_DENY.")
    deny: tuple[Network, ...] = setting(
        "GATEWAY_IP_RESTRICTION_DENY", networks, "",
        "ip-restriction: comma-separated IPs or CIDR ranges refused (checked before allow).")
    status: int = setting("GATEWAY_IP_RESTRICTION_STATUS", number(int, 100, 599), "403",
                          "ip-restriction: status answered to a refused client.")
    message: str | None = setting(
        "GATEWAY_IP_RESTRICTION_MESSAGE", text, None,
        "ip-restriction: message answered to a refused client; unset: Kong's "
        "`IP address not allowed: <address>`.")

    def __post_init__(self) -> None:
        if not self.allow and not self.deny:
            raise ConfigError("ip-restriction: at least one of these fields must be non-empty: "
                              "'config.allow', 'config.deny' (GATEWAY_IP_RESTRICTION_ALLOW, "
                              "GATEWAY_IP_RESTRICTION_DENY)")


@lru_cache(maxsize=ADDRESS_CACHE)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:10.0.0.1 is 10.0.0.1
    return mapped or address


def _listed(address: ipaddress.IPv4Address | ipaddress.IPv6Address,
            listed: tuple[Network, ...]) -> bool:
    return any(address.version == network.version and address in network
               for network in listed)


class IpRestriction(Filter):
    """Answers ``status`` (403) to a client address denied or not allowed."""

    NAME = "ip-restriction"
    PRIORITY = 990
    VERSION = "1.0.0"
    Config = IpRestrictionConfig

    def on_request(self, ex: Exchange) -> None:
        config = self.config
        client = ex.client_ip
        address = _address(client) if client else None
        if address is None:
            self._refuse(ex, 403, NO_ADDRESS)
        elif (config.deny and _listed(address, config.deny)) or \
                (config.allow and not _listed(address, config.allow)):
            self._refuse(ex, config.status, config.message or f"IP address not allowed: {client}")

    @staticmethod
    def _refuse(ex: Exchange, status: int, message: str) -> None:
        log.warning("request %s: %s", ex.request_id, message)  # Kong logs it too
        ex.outcomes[IpRestriction.NAME] = "denied"
        ex.error(status, message)
