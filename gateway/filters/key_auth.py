"""key-auth: only clients with a known API key pass (Kong's plugin of that name).

Keys come from GATEWAY_KEYAUTH_KEYS and/or GATEWAY_KEYAUTH_KEYS_FILE, read
when a worker starts, so a SIGHUP (gunicorn's reload starts new workers)
picks up a changed file. The key is looked up in the headers and query
parameters named by GATEWAY_KEYAUTH_KEY_NAMES. The consumer it belongs to is
sent upstream as X-Consumer-Username (Kong's headers) and left in
``ex.consumer`` for later filters (rate-limiting by consumer).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from urllib.parse import unquote_plus

from werkzeug.datastructures import Headers

from gateway.config import ConfigError, Settings, boolean, names, setting
from gateway.filters import auth
from gateway.filters.base import Filter
from gateway.ops.http1 import REPEATED_HEADERS
from gateway.proxy.exchange import Exchange
from gateway.proxy.headers import is_header_name, is_safe_value

NO_KEY = "No API key found in request"
INVALID_KEY = "Unauthorized"  # Kong 3.x; Kong 2.x said "Invalid authentication credentials"
DUPLICATE_KEY = "Duplicate API key found"
# Namespace of the stable UUIDs standing in for Kong's consumer and credential ids.
_IDS = uuid.uuid5(uuid.NAMESPACE_URL, "https://gateway.invalid/key-auth")


@dataclass(frozen=True)
class Owner:
    """A consumer as the upstream is told about it: name, id and custom_id (Kong's headers)."""

    username: str
    id: str
    custom_id: str | None = None


@dataclass(frozen=True)
class Credential:
    """A key's owner and the key's id (the file's id, else a UUID derived from the key's
    digest, never the key)."""

    consumer: str
    id: str
    owner: Owner | None = None


class KeyTable:
    """API keys by their SHA-256 digest.

    Looking up a digest instead of comparing keys leaks no timing about how much
    of a guessed key is right; the keys themselves are not kept, and repr()
    shows only how many there are, so a logged config shows none.
    """

    def __init__(self) -> None:
        self._by_digest: dict[bytes, Credential] = {}
        #: Consumers by username, id and custom_id (the anonymous consumer is found here).
        self.owners: dict[str, Owner] = {}

    def add_owner(self, owner: Owner, *aliases: str | None) -> None:
        """Know ``owner`` by its username and each alias (id, custom_id); ValueError on a
        value that cannot go in a header."""
        for value in (owner.username, owner.id, owner.custom_id):
            if value is not None and not is_safe_value(value):
                raise ValueError(f"consumer {owner.username!r}: its username, id or custom_id "
                                 "has control characters")
        for name in (owner.username, *aliases):
            if name is not None:
                self.owners.setdefault(name, owner)

    def add(self, consumer: str, key: str, credential_id: str | None = None) -> None:
        """Register ``key`` for ``consumer`` (its id from the file, if any); ValueError on a
        bad name or a key given twice."""
        if not key or any(c.isspace() for c in key) or not is_safe_value(key):
            raise ValueError(f"the key of consumer {consumer!r} is empty or has spaces or "
                             "control characters")
        if not consumer or not is_safe_value(consumer):
            raise ValueError("a consumer name is empty or has control characters")
        digest = hashlib.sha256(key.encode()).digest()
        if digest in self._by_digest:
            raise ValueError(f"a key of consumer {consumer!r} is listed twice")
        if credential_id is not None and not is_safe_value(credential_id):
            raise ValueError(f"a credential id of consumer {consumer!r} has control characters")
        self._by_digest[digest] = Credential(
            consumer, credential_id or str(uuid.uuid5(_IDS, digest.hex())),
            self.owners.get(consumer))

    def update(self, other: KeyTable) -> None:
        """Add every key of ``other``; ValueError on a key in both."""
        if self._by_digest.keys() & other._by_digest.keys():
            raise ValueError("a key is listed in both GATEWAY_KEYAUTH_KEYS and the keys file")
        self._by_digest.update(other._by_digest)
        for name, owner in other.owners.items():
            self.owners.setdefault(name, owner)

    def lookup(self, key: str) -> Credential | None:
        return self._by_digest.get(hashlib.sha256(key.encode()).digest())

    def __len__(self) -> int:
        return len(self._by_digest)

    def __repr__(self) -> str:
        return f"<KeyTable of {len(self)} keys>"


def keys_from_env(raw: str) -> KeyTable:
    """``consumer:key,consumer:key`` (a consumer may have several keys)."""
    table = KeyTable()
    for item in names(raw):
        consumer, sep, key = item.partition(":")
        if not sep:
            raise ValueError("must be a comma-separated list of consumer:key")
        table.add(consumer.strip(), key.strip())
    return table


def keys_from_file(path: str) -> KeyTable:
    """A file of ``consumer key`` lines; blank lines and ``#`` comments skipped."""
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read it: {getattr(exc, 'strerror', None) or exc}") from None
    table = KeyTable()
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) != 2:
            raise ValueError(f"line {number}: expected `consumer key`")
        try:
            table.add(*fields)
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from None
    return table


def key_names(raw: str) -> tuple[str, ...]:
    """Comma-separated header / query parameter names."""
    parsed = names(raw)
    if not parsed or not all(is_header_name(name) for name in parsed):
        raise ValueError("must be comma-separated names made of letters, digits and -_.")
    return parsed


def realm(raw: str) -> str:
    if '"' in raw or "\\" in raw or not is_safe_value(raw):
        raise ValueError("must not hold quotes, backslashes or control characters")
    return raw


def consumer_name(raw: str) -> str:
    if not is_safe_value(raw):
        raise ValueError("must not hold control characters")
    return raw


@dataclass(frozen=True)
class KeyAuthConfig:
    # setting() returns a dataclasses.field, which ruff cannot tell for KeyTable fields.
    keys: KeyTable | None = setting(
        "GATEWAY_KEYAUTH_KEYS", keys_from_env, None,
        "key-auth: `consumer:key,...` accepted API keys (a consumer may have several).",
        secret=True)
    keys_file: KeyTable | None = setting(
        "GATEWAY_KEYAUTH_KEYS_FILE", keys_from_file, None,
        "key-auth: file of `consumer key` lines (# comments), read again on reload (SIGHUP).")
    key_names: tuple[str, ...] = setting(
        "GATEWAY_KEYAUTH_KEY_NAMES", key_names, "apikey",
        "key-auth: header and query parameter names the key is looked up in, in order.")
    key_in_header: bool = setting(
        "GATEWAY_KEYAUTH_KEY_IN_HEADER", boolean, "true", "key-auth: look for the key in headers.")
    key_in_query: bool = setting(
        "GATEWAY_KEYAUTH_KEY_IN_QUERY", boolean, "true",
        "key-auth: look for the key in query parameters.")
    hide_credentials: bool = setting(
        "GATEWAY_KEYAUTH_HIDE_CREDENTIALS", boolean, "false",
        "key-auth: remove the key headers and query parameters before the upstream sees them.")
    anonymous: str | None = setting(
        "GATEWAY_KEYAUTH_ANONYMOUS", consumer_name, None,
        "key-auth: consumer name given to requests without a valid key, which then pass "
        "(with X-Anonymous-Consumer: true); unset: they get 401.")
    run_on_preflight: bool = setting(
        "GATEWAY_KEYAUTH_RUN_ON_PREFLIGHT", boolean, "true",
        "key-auth: also require a key on OPTIONS requests (CORS preflights).")
    realm: str | None = setting(
        "GATEWAY_KEYAUTH_REALM", realm, None,
        "key-auth: realm of the `WWW-Authenticate: Key realm=\"...\"` header on 401s; unset: "
        "`WWW-Authenticate: Key` (Kong's default).")

    def __post_init__(self) -> None:
        if self.keys is None and self.keys_file is None:
            raise ConfigError("key-auth needs keys: set GATEWAY_KEYAUTH_KEYS or "
                              "GATEWAY_KEYAUTH_KEYS_FILE")


def strip_query(query: str, dropped: tuple[str, ...]) -> str:
    """The raw ``query`` without the parameters named in ``dropped``, the rest byte for byte."""
    return "&".join(part for part in query.split("&")
                    if unquote_plus(part.partition("=")[0]) not in dropped)


class KeyAuth(Filter):
    """Authenticates in the request phase; the upstream sees the consumer, never a spoofed one."""

    NAME = "key-auth"
    PRIORITY = 1250  # Kong's
    VERSION = "1.0.0"
    Config = KeyAuthConfig

    def __init__(self, config: KeyAuthConfig, settings: Settings) -> None:
        super().__init__(config, settings)
        self.keys = KeyTable()
        try:
            for table in (config.keys, config.keys_file):
                if table is not None:
                    self.keys.update(table)
        except ValueError as exc:
            raise ConfigError(f"GATEWAY_KEYAUTH_KEYS_FILE: {exc}") from None
        self.challenge = 'Key' if config.realm is None else f'Key realm="{config.realm}"'
        # Header names as the upstream headers spell them: the WSGI environ knows `api_key`
        # and `api-key` as one name (HTTP_API_KEY), which request_headers spells `Api-Key`.
        self.header_names = tuple(name.replace("_", "-") for name in config.key_names)
        self.environ_keys = tuple("HTTP_" + name.upper().replace("-", "_")
                                  for name in self.header_names)

    def on_request(self, ex: Exchange) -> None:
        if auth.skip(ex, self.config.run_on_preflight, self.config.anonymous):
            return
        key, duplicate = self.find_key(ex)
        if key:
            ex.secrets.append(key)
        if self.config.hide_credentials:
            self.hide_key(ex)
        credential = self.keys.lookup(key) if key else None
        if credential is not None:
            self.authenticate(ex, credential.owner or self.owner(credential.consumer),
                              credential.id)
        else:
            self.refuse(ex, DUPLICATE_KEY if duplicate else INVALID_KEY if key else NO_KEY)

    def find_key(self, ex: Exchange) -> tuple[str | None, bool]:
        """(key, duplicate): the first key found by name, header before query (Kong's order).

        As Kong's: a header present but empty ends the search with no key (not a look at
        the query), and a key header on several lines, or a key parameter given twice, is
        a duplicate. (Several lines are told from one only under the gateway's own
        gunicorn worker; elsewhere they arrive joined, as one key that matches none.)
        """
        for name, environ_key in zip(self.config.key_names, self.environ_keys, strict=True):
            # The environ, not upstream_headers: those leave out an empty field.
            value = ex.environ.get(environ_key) if self.config.key_in_header else None
            if value is not None:
                if environ_key in ex.environ.get(REPEATED_HEADERS, ()):
                    return None, True
                return value or None, False
            if self.config.key_in_query:
                values = ex.request.args.getlist(name)
                if len(values) > 1:
                    return None, True
                if values and values[0]:
                    return values[0], False
        return None, False

    def hide_key(self, ex: Exchange) -> None:
        """Drop every key header and key query parameter from what goes upstream."""
        for header in self.header_names:
            ex.upstream_headers.remove(header)
        query = ex.upstream_query
        if query:
            ex.upstream_query = strip_query(query, self.config.key_names)

    def owner(self, consumer: str) -> Owner:
        """The consumer named ``consumer`` (username, id or custom_id), or one by that name."""
        return self.keys.owners.get(consumer) or Owner(consumer, auth.consumer_id(consumer))

    def authenticate(self, ex: Exchange, owner: Owner, credential: str | None) -> None:
        """Tell the upstream and later filters who the client is (Kong's set_consumer)."""
        auth.set_consumer(ex, self.NAME, owner.username, credential, owner.custom_id,
                          owner.id)

    def refuse(self, ex: Exchange, message: str) -> None:
        """No valid key: pass as the anonymous consumer when configured (found by username,
        id or custom_id), else 401."""
        if self.config.anonymous is not None:
            self.authenticate(ex, self.owner(self.config.anonymous), None)
            return
        auth.refuse(ex, self.NAME, None, message,
                    Headers([("WWW-Authenticate", self.challenge)]))
