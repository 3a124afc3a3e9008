"""hmac-auth: only requests signed with a known username's secret pass (Kong's plugin).

The client signs some of its headers (``Authorization`` or
``Proxy-Authorization: hmac username="..", algorithm="..", headers="..",
signature=".."``) with HMAC-SHA1/256/384/512; Date or X-Date must be within
``clock_skew`` seconds; ``enforce_headers`` must be among the signed ones;
with ``validate_request_body`` the body's SHA-256 must match its Digest header
(the body is read whole, up to 8 MiB). Signatures are compared in constant
time; the secrets (held in memory, needed to sign) never appear in logs or
errors. Messages and WWW-Authenticate are Kong's, word for word.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from dataclasses import dataclass

from werkzeug.datastructures import Headers
from werkzeug.http import parse_date

from gateway.config import ConfigError, Settings, boolean, names, number, setting
from gateway.filters import auth
from gateway.filters.auth import CredentialStore
from gateway.filters.base import Filter
from gateway.proxy.exchange import Exchange
from gateway.proxy.request import request_target

ALGORITHMS = {"hmac-sha1": hashlib.sha1, "hmac-sha256": hashlib.sha256,
              "hmac-sha384": hashlib.sha384, "hmac-sha512": hashlib.sha512}
NOT_VALID = "HMAC signature cannot be verified"
NOT_SAME = "HMAC signature does not match"
NO_DATE = (NOT_VALID + ", a valid date or x-date header is required for HMAC Authentication")
MAX_BODY = 8 * 1024 * 1024
_FIELDS = re.compile(r'\s*[Hh]mac\s*username="(.+)",\s*algorithm="(.+)",\s*headers="(.+)",'
                     r'\s*signature="(.+)"')


class Secret(bytes):
    """An hmac-auth secret; repr() hides it."""

    def __repr__(self) -> str:
        return "<hmac secret>"


def add_credential(store: CredentialStore[Secret], consumer: str, username: str, secret: str,
                   custom_id: str | None = None, consumer_id: str | None = None) -> None:
    if not username or not username.isprintable() or '"' in username:
        raise ValueError("a username is empty or holds quotes or control characters")
    if not isinstance(secret, str) or not secret:
        raise ValueError(f"the secret of {username!r} must be a non-empty string")
    store.add(consumer, username, Secret(secret.encode()), custom_id, consumer_id)


def credentials_from_env(raw: str) -> CredentialStore[Secret]:
    """``consumer:username:secret,...``."""
    return auth.triples_from_env(raw, "hmac-auth", "secret", add_credential)


def credentials_from_file(path: str) -> CredentialStore[Secret]:
    """A file of ``consumer username secret`` lines (# comments)."""
    return auth.triples_from_file(path, "hmac-auth", "secret", add_credential)


def algorithms(raw: str) -> tuple[str, ...]:
    parsed = names(raw)
    if not parsed or any(name not in ALGORITHMS for name in parsed):
        raise ValueError(f"expected some of: {', '.join(ALGORITHMS)}")
    return parsed


def header_list(raw: str) -> tuple[str, ...]:
    return tuple(name.lower() for name in names(raw))


@dataclass(frozen=True)
class HmacAuthConfig:
    credentials: CredentialStore[Secret] | None = setting(
        "GATEWAY_HMACAUTH_CREDENTIALS", credentials_from_env, None,
        "hmac-auth: `consumer:username:secret,...` accepted credentials.", secret=True)
    credentials_file: CredentialStore[Secret] | None = setting(
        "GATEWAY_HMACAUTH_CREDENTIALS_FILE", credentials_from_file, None,
        "hmac-auth: file of `consumer username secret` lines (# comments).")
    hide_credentials: bool = setting(
        "GATEWAY_HMACAUTH_HIDE_CREDENTIALS", boolean, "false",
        "hmac-auth: remove the signature header before the upstream sees it.")
    clock_skew: float = setting(
        "GATEWAY_HMACAUTH_CLOCK_SKEW", number(float, 0), "300",
        "hmac-auth: seconds Date / X-Date may be off (replay protection).")
    anonymous: str | None = setting(
        "GATEWAY_HMACAUTH_ANONYMOUS", auth.consumer_name, None,
        "hmac-auth: consumer given to requests without a valid signature, which then pass.")
    validate_request_body: bool = setting(
        "GATEWAY_HMACAUTH_VALIDATE_REQUEST_BODY", boolean, "false",
        "hmac-auth: the body must match its `Digest: SHA-256=...` header (read whole, 8 MiB).")
    enforce_headers: tuple[str, ...] | None = setting(
        "GATEWAY_HMACAUTH_ENFORCE_HEADERS", header_list, None,
        "hmac-auth: headers every signature must cover.")
    algorithms: tuple[str, ...] = setting(
        "GATEWAY_HMACAUTH_ALGORITHMS", algorithms, ",".join(ALGORITHMS),
        "hmac-auth: HMAC algorithms accepted.")
    realm: str | None = setting(
        "GATEWAY_HMACAUTH_REALM", auth.realm, None,
        "hmac-auth: realm of `WWW-Authenticate: hmac` on 401s.")

    def __post_init__(self) -> None:
        if self.credentials is None and self.credentials_file is None:
            raise ConfigError("hmac-auth needs credentials: set GATEWAY_HMACAUTH_CREDENTIALS "
                              "or GATEWAY_HMACAUTH_CREDENTIALS_FILE")
        if self.clock_skew <= 0:
            raise ConfigError("hmac-auth: clock_skew must be greater than 0")


@dataclass(frozen=True)
class Signed:
    """The fields of an hmac Authorization header."""

    username: str
    algorithm: str
    headers: tuple[str, ...]
    signature: str


def parse_fields(value: str | None) -> Signed | None:
    match = _FIELDS.search(value) if value else None
    if match is None:
        return None
    username, algorithm, headers, signature = match.groups()
    return Signed(username, algorithm, tuple(headers.split(" ")), signature)


class HmacAuth(Filter):
    """Authenticates in the request phase by an HMAC signature of the request."""

    NAME = "hmac-auth"
    PRIORITY = 1030  # Kong's
    VERSION = "1.0.0"
    Config = HmacAuthConfig

    def __init__(self, config: HmacAuthConfig, settings: Settings) -> None:
        super().__init__(config, settings)
        self.store: CredentialStore[Secret] = CredentialStore("hmac-auth")
        try:
            for given in (config.credentials, config.credentials_file):
                if given is not None:
                    self.store.update(given)
        except ValueError as exc:
            raise ConfigError(f"hmac-auth: {exc}") from None
        challenge = f'hmac realm="{config.realm}"' if config.realm is not None else "hmac"
        self.challenge = Headers([("WWW-Authenticate", challenge)])

    def on_request(self, ex: Exchange) -> None:
        if auth.skip(ex, True, self.config.anonymous):
            return
        found = self.identify(ex)
        if isinstance(found, str):
            self.store.refuse(ex, self.NAME, self.config.anonymous, found,
                              Headers(self.challenge))
        else:
            self.store.authenticate(ex, self.NAME, found)

    def identify(self, ex: Exchange) -> auth.Owned[Secret] | str:
        """The credential of a valid signature, or Kong's message saying why not."""
        sent = ex.request.headers
        authorization, proxy = sent.get("Authorization"), sent.get("Proxy-Authorization")
        if authorization is None and proxy is None:
            return "Unauthorized"
        if not (self.fresh(sent.get("X-Date")) or self.fresh(sent.get("Date"))):
            return NO_DATE
        signed = parse_fields(proxy)
        if signed is None:
            signed = parse_fields(authorization)
            hidden = "Authorization"
        else:
            hidden = "Proxy-Authorization"
        if self.config.hide_credentials:
            ex.upstream_headers.remove(hidden)
        owned = self.store.get(signed.username) if self.acceptable(signed) else None
        if owned is None:
            return NOT_VALID
        if not self.matches(ex, signed, owned.secret):
            return NOT_SAME
        if self.config.validate_request_body and not self.body_matches(ex):
            return NOT_SAME
        return owned

    def fresh(self, date: str | None) -> bool:
        when = parse_date(date) if date else None
        return when is not None and abs(time.time() - when.timestamp()) <= self.config.clock_skew

    def acceptable(self, signed: Signed | None) -> bool:
        """Kong's validate_params: enforced headers signed, an accepted algorithm."""
        if signed is None:
            return False
        if not set(self.config.enforce_headers or ()).issubset(signed.headers):
            return False
        return signed.algorithm in self.config.algorithms

    def matches(self, ex: Exchange, signed: Signed, secret: bytes) -> bool:
        try:
            given = base64.b64decode(signed.signature, validate=True)
        except (binascii.Error, ValueError):
            return False
        text = signing_string(ex, signed.headers).encode()
        expected = hmac.digest(secret, text, ALGORITHMS[signed.algorithm])
        return hmac.compare_digest(expected, given)

    def body_matches(self, ex: Exchange) -> bool:
        body = ex.read_body(MAX_BODY)
        digest = ex.request.headers.get("Digest")
        if digest is None:
            return body == b""
        expected = "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()
        return hmac.compare_digest(expected.encode(), digest.encode())


def signing_string(ex: Exchange, names: tuple[str, ...]) -> str:
    """Kong's signing string: ``name: value`` lines of the signed headers."""
    lines = []
    for name in names:
        value = ex.request.headers.get(name)
        if value is not None:
            lines.append(f"{name}: {value}")
        elif name == "@request-target":
            lines.append(f"{name}: {ex.method.lower()} {request_target(ex.environ)}")
        elif name == "request-line":
            protocol = ex.environ.get("SERVER_PROTOCOL", "HTTP/1.1")
            lines.append(f"{ex.method} {request_target(ex.environ)} {protocol}")
        else:
            lines.append(f"{name}:")
    return "\n".join(lines)
