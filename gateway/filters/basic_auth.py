"""basic-auth: only clients with a known username and password pass (Kong's plugin).

Credentials (``basicauth_credentials``: username, password) come from a
declarative file or from GATEWAY_BASICAUTH_CREDENTIALS / _FILE. Passwords are
held only as salted hashes: HMAC-SHA256 under a random salt per credential,
made when the credentials are loaded, and compared in constant time. A slow
hash (scrypt, PBKDF2) would cost milliseconds on every request; it would not
protect the passwords better here, since whoever can read the worker's memory
can read the file they came from. Passwords never appear in logs or errors.
Proxy-Authorization is tried before Authorization, as Kong does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from dataclasses import dataclass

from werkzeug.datastructures import Headers

from gateway.config import ConfigError, Settings, boolean, setting
from gateway.filters import auth
from gateway.filters.auth import CredentialStore
from gateway.filters.base import Filter
from gateway.proxy.exchange import Exchange

_BASIC = re.compile(r"\s*[Bb]asic\s*(.+)")
_PARTS = re.compile(r"([^:]+):(.*)", re.DOTALL)


@dataclass(frozen=True)
class Hashed:
    """A password as a random salt and HMAC-SHA256(salt, password)."""

    salt: bytes
    digest: bytes

    @classmethod
    def of(cls, password: str) -> Hashed:
        salt = os.urandom(16)
        return cls(salt, hmac.digest(salt, password.encode(), hashlib.sha256))

    def matches(self, password: str) -> bool:
        given = hmac.digest(self.salt, password.encode(), hashlib.sha256)
        return hmac.compare_digest(given, self.digest)

    def __repr__(self) -> str:
        return "<Hashed password>"


def add_credential(store: CredentialStore[Hashed], consumer: str, username: str,
                   password: str, custom_id: str | None = None,
                   consumer_id: str | None = None) -> None:
    """Add one credential, hashing its password; ValueError naming what is wrong (never it)."""
    if not username or ":" in username or not username.isprintable():
        raise ValueError("a username is empty or holds ':' or control characters")
    if not isinstance(password, str):
        raise ValueError(f"the password of {username!r} must be a string")
    store.add(consumer, username, Hashed.of(password), custom_id, consumer_id)


def credentials_from_env(raw: str) -> CredentialStore[Hashed]:
    """``consumer:username:password,...``."""
    return auth.triples_from_env(raw, "basic-auth", "password", add_credential)


def credentials_from_file(path: str) -> CredentialStore[Hashed]:
    """A file of ``consumer username password`` lines (# comments)."""
    return auth.triples_from_file(path, "basic-auth", "password", add_credential)


@dataclass(frozen=True)
class BasicAuthConfig:
    credentials: CredentialStore[Hashed] | None = setting(
        "GATEWAY_BASICAUTH_CREDENTIALS", credentials_from_env, None,
        "basic-auth: `consumer:username:password,...` accepted credentials.", secret=True)
    credentials_file: CredentialStore[Hashed] | None = setting(
        "GATEWAY_BASICAUTH_CREDENTIALS_FILE", credentials_from_file, None,
        "basic-auth: file of `consumer username password` lines (# comments).")
    hide_credentials: bool = setting(
        "GATEWAY_BASICAUTH_HIDE_CREDENTIALS", boolean, "false",
        "basic-auth: remove the credentials header before the upstream sees it.")
    anonymous: str | None = setting(
        "GATEWAY_BASICAUTH_ANONYMOUS", auth.consumer_name, None,
        "basic-auth: consumer given to requests without valid credentials, which then pass.")
    realm: str = setting(
        "GATEWAY_BASICAUTH_REALM", auth.realm, "service",
        "basic-auth: realm of the `WWW-Authenticate: Basic realm=\"...\"` header on 401s.")

    def __post_init__(self) -> None:
        if self.credentials is None and self.credentials_file is None:
            raise ConfigError("basic-auth needs credentials: set GATEWAY_BASICAUTH_CREDENTIALS "
                              "or GATEWAY_BASICAUTH_CREDENTIALS_FILE")


def parse_basic(value: str | None) -> tuple[str, str] | None:
    """(username, password) of a ``Basic <base64>`` header value, None if it is not one."""
    match = _BASIC.search(value) if value else None
    if match is None:
        return None
    try:
        decoded = base64.b64decode(match.group(1).strip(), validate=True).decode()
    except (binascii.Error, ValueError):
        return None
    parts = _PARTS.search(decoded)
    return (parts.group(1), parts.group(2)) if parts else None


class BasicAuth(Filter):
    """Authenticates in the request phase by username and password."""

    NAME = "basic-auth"
    PRIORITY = 1100  # Kong's
    VERSION = "1.0.0"
    Config = BasicAuthConfig

    def __init__(self, config: BasicAuthConfig, settings: Settings) -> None:
        super().__init__(config, settings)
        self.store: CredentialStore[Hashed] = CredentialStore("basic-auth")
        try:
            for given in (config.credentials, config.credentials_file):
                if given is not None:
                    self.store.update(given)
        except ValueError as exc:
            raise ConfigError(f"GATEWAY_BASICAUTH_CREDENTIALS_FILE: {exc}") from None
        self.challenge = Headers([("WWW-Authenticate", f'Basic realm="{config.realm}"')])

    def on_request(self, ex: Exchange) -> None:
        if auth.skip(ex, True, self.config.anonymous):
            return
        owned = self.identify(ex)
        if owned is None:
            self.store.refuse(ex, self.NAME, self.config.anonymous, "Unauthorized",
                              Headers(self.challenge))
        else:
            self.store.authenticate(ex, self.NAME, owned)

    def identify(self, ex: Exchange) -> auth.Owned[Hashed] | None:
        """The credential of Proxy-Authorization, else of Authorization (Kong's order)."""
        sent = ex.request.headers  # Proxy-Authorization is not among the upstream's headers
        for name in ("Proxy-Authorization", "Authorization"):
            given = parse_basic(sent.get(name))
            if self.config.hide_credentials:
                ex.upstream_headers.remove(name)
            owned = self.store.get(given[0]) if given else None
            if owned is not None:
                return owned if owned.secret.matches(given[1]) else None
        return None
