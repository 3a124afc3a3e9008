"""What Kong's authentication plugins share: setting the consumer, anonymous, OR and AND.

Every authentication filter (key-auth, jwt, basic-auth, hmac-auth, and a
filter author's own, through ``gateway.pdk``) identifies the client the same
way:

- :func:`begin` removes the client's copies of the consumer headers before the
  first authentication filter looks at the request, so the upstream can trust
  them;
- :func:`skip` says whether this filter has nothing to do: an OPTIONS preflight
  it does not run on, or (with ``anonymous`` set, Kong's "logical OR") a real
  consumer already identified by an earlier filter;
- :func:`set_consumer` leaves the consumer in ``ex.consumer`` (for acl,
  rate-limiting, proxy-cache) and sends X-Consumer-ID, X-Consumer-Username,
  X-Consumer-Custom-ID, X-Credential-Identifier or X-Anonymous-Consumer upstream;
- :func:`refuse` passes the request as the anonymous consumer when one is
  configured, else answers 401 (Kong's "logical AND": every filter must pass).

:class:`CredentialStore` holds credentials by their lookup key (a jwt key, a
basic-auth username...) and refuses one given twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Generic, TypeVar

from werkzeug.datastructures import Headers

from gateway.proxy.exchange import Consumer, Exchange
from gateway.proxy.headers import drop_fields, is_safe_value

#: Headers Kong sets upstream for the consumer; always removed from the client's request first.
CONSUMER_HEADERS = ("X-Consumer-ID", "X-Consumer-Custom-ID", "X-Consumer-Username",
                    "X-Credential-Identifier", "X-Anonymous-Consumer")
_CONSUMER_NAMES = frozenset(name.lower() for name in CONSUMER_HEADERS)
# Namespace of the stable UUIDs standing in for Kong's consumer and credential ids.
_IDS = uuid.uuid5(uuid.NAMESPACE_URL, "https://gateway.invalid/key-auth")


@lru_cache(maxsize=4096)
def consumer_id(consumer: str) -> str:
    """A stable UUID for a consumer name (Kong's X-Consumer-ID)."""
    return str(uuid.uuid5(_IDS, "consumer:" + consumer))


def begin(ex: Exchange) -> None:
    """Remove the client's consumer headers, once: before any filter has set a consumer."""
    if ex.consumer is None:
        drop_fields(ex.upstream_headers, _CONSUMER_NAMES)


def identified(ex: Exchange) -> bool:
    """True when an earlier filter identified a real (not anonymous) consumer."""
    return ex.consumer is not None and not ex.consumer.anonymous


def skip(ex: Exchange, run_on_preflight: bool, anonymous: str | None) -> bool:
    """Begin, then True when this filter has nothing to do (preflight, or OR already met)."""
    begin(ex)
    if ex.method == "OPTIONS" and not run_on_preflight:
        return True
    return anonymous is not None and identified(ex)


def set_consumer(ex: Exchange, plugin: str, consumer: str, credential: str | None,
                 custom_id: str | None = None, id: str | None = None) -> None:
    """Tell the upstream and later filters who the client is (Kong's set_consumer).

    ``credential`` None: the anonymous consumer. ``id``: the consumer's id from the
    declarative file (default: a stable UUID of its name). A later filter replaces what
    an earlier one set, headers included.
    """
    headers = ex.upstream_headers
    drop_fields(headers, _CONSUMER_NAMES)
    ex.consumer = Consumer(consumer, id or consumer_id(consumer), credential, custom_id)
    headers.add("X-Consumer-ID", ex.consumer.id)
    headers.add("X-Consumer-Username", consumer)
    if custom_id is not None:
        headers.add("X-Consumer-Custom-ID", custom_id)
    if credential is None:
        headers.add("X-Anonymous-Consumer", "true")
    else:
        headers.add("X-Credential-Identifier", credential)
    ex.outcomes[plugin] = "anonymous" if credential is None else "authenticated"


def refuse(ex: Exchange, plugin: str, anonymous: str | None, message: str,
           headers: Headers | None = None, anonymous_id: str | None = None) -> None:
    """Not identified: pass as the anonymous consumer (its id ``anonymous_id``, default a
    stable UUID of its name) when configured, else 401."""
    if anonymous is not None:
        set_consumer(ex, plugin, anonymous, None, id=anonymous_id)
        return
    ex.outcomes[plugin] = "rejected"
    ex.error(401, message, headers)


def consumer_name(raw: str) -> str:
    """A consumer name setting (anonymous, a credential's owner)."""
    if not raw or not is_safe_value(raw):
        raise ValueError("must be a non-empty name without control characters")
    return raw


def realm(raw: str) -> str:
    """A realm quoted in WWW-Authenticate: no quotes, backslashes or control characters."""
    if '"' in raw or "\\" in raw or not is_safe_value(raw):
        raise ValueError("must not hold quotes, backslashes or control characters")
    return raw


T = TypeVar("T")


@dataclass(frozen=True)
class Owned(Generic[T]):
    """A credential and who owns it."""

    consumer: str
    custom_id: str | None
    #: X-Credential-Identifier: the credential's lookup key (Kong's jwt key, basic-auth or
    #: hmac-auth username), never its secret.
    id: str
    secret: T
    #: Kong's X-Consumer-ID: the consumer's id in the declarative file (None: not given).
    consumer_id: str | None = None


class CredentialStore(Generic[T]):
    """Credentials by lookup key; repr() shows only how many there are (no secrets in logs)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._by_key: dict[str, Owned[T]] = {}
        #: The declarative file's consumer ids by username, every consumer's (the anonymous
        #: one may own no credential of this kind); empty for credentials from variables.
        self.consumer_ids: dict[str, str] = {}

    def add(self, consumer: str, key: str, secret: T, custom_id: str | None = None,
            consumer_id: str | None = None) -> None:
        """Register a credential; ValueError on a bad consumer name or a key given twice."""
        consumer_name(consumer)
        if key in self._by_key:
            raise ValueError(f"{self.kind} credential {key!r} is listed twice")
        self._by_key[key] = Owned(consumer, custom_id, key, secret, consumer_id)

    def update(self, other: CredentialStore[T]) -> None:
        for key, owned in other._by_key.items():
            if key in self._by_key:
                raise ValueError(f"{self.kind} credential {key!r} is listed twice")
            self._by_key[key] = owned
        self.consumer_ids.update(other.consumer_ids)

    def authenticate(self, ex: Exchange, plugin: str, owned: Owned[T]) -> None:
        """Set ``owned``'s consumer as the request's, with the file's id when it has one."""
        set_consumer(ex, plugin, owned.consumer, owned.id, owned.custom_id, owned.consumer_id)

    def refuse(self, ex: Exchange, plugin: str, anonymous: str | None, message: str,
               headers: Headers | None = None) -> None:
        """:func:`refuse`, the anonymous consumer with the file's id when it has one."""
        refuse(ex, plugin, anonymous, message, headers,
               self.consumer_ids.get(anonymous) if anonymous is not None else None)

    def get(self, key: str) -> Owned[T] | None:
        return self._by_key.get(key)

    def __iter__(self) -> Iterator[tuple[str, Owned[T]]]:
        return iter(self._by_key.items())

    def __len__(self) -> int:
        return len(self._by_key)

    def __repr__(self) -> str:
        return f"<{self.kind} credentials: {len(self)}>"

    def __eq__(self, other: Any) -> bool:
        return self is other

    __hash__ = object.__hash__


#: Adds one (consumer, username, secret) credential to a store; ValueError naming the fault.
AddCredential = Callable[[CredentialStore[Any], str, str, str], None]


def triples_from_env(raw: str, kind: str, secret: str, add: AddCredential
                     ) -> CredentialStore[Any]:
    """``consumer:username:<secret>,...`` credentials (the secret may hold ':')."""
    store: CredentialStore[Any] = CredentialStore(kind)
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        parts = item.split(":", 2)
        if len(parts) != 3:
            raise ValueError(f"must be a comma-separated list of consumer:username:{secret}")
        add(store, *parts)
    return store


def triples_from_file(path: str, kind: str, secret: str, add: AddCredential
                      ) -> CredentialStore[Any]:
    """A file of ``consumer username <secret>`` lines (# comments)."""
    store: CredentialStore[Any] = CredentialStore(kind)
    for number, fields in read_lines(path):
        if len(fields) != 3:
            raise ValueError(f"line {number}: expected `consumer username {secret}`")
        try:
            add(store, *fields)
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from None
    return store


def read_lines(path: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of a credentials file; blank lines and ``#`` comments skipped."""
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read it: {getattr(exc, 'strerror', None) or exc}") from None
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if fields and not fields[0].startswith("#"):
            yield number, fields
