"""jwt: only clients with a JWT signed by a known secret pass (Kong's plugin of that name).

The token is looked up in the query parameters ``uri_param_names``, the
cookies ``cookie_names`` and the headers ``header_names`` (``Bearer <token>``);
its ``key_claim_name`` claim (or header field) names the credential
(``jwt_secrets``: key, algorithm, secret or rsa_public_key) whose consumer the
client becomes. Signatures are checked by PyJWT (with ``cryptography`` for
the RSA, ECDSA and EdDSA algorithms), never here; the token's ``alg`` must be
the credential's, so ``alg: none`` or an HS256 token signed with an RSA public
key never pass. Statuses, messages and WWW-Authenticate are Kong's, word for word.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import warnings
from dataclasses import dataclass
from typing import Any

import jwt
import yaml
from jwt.algorithms import get_default_algorithms
from jwt.utils import base64url_decode
from jwt.warnings import InsecureKeyLengthWarning
from werkzeug.datastructures import Headers

from gateway.config import ConfigError, Settings, boolean, names, setting
from gateway.filters import auth
from gateway.filters.auth import CredentialStore
from gateway.filters.base import Filter
from gateway.jsoncodec import encode_json
from gateway.proxy.exchange import Exchange

ALGORITHMS = ("HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384",
              "ES512", "PS256", "PS384", "PS512", "EdDSA")
_BEARER = re.compile(r"\s*[Bb]earer\s+(.+)")
#: PyJWT's algorithm objects: each verifies a signature with a key prepared once, when loaded.
_VERIFIERS = get_default_algorithms()
# Kong accepts HS secrets of any length; PyJWT would warn on every request with a short one.
warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)


@dataclass(frozen=True)
class JwtSecret:
    """A jwt_secrets credential's algorithm and key material (repr() hides them)."""

    algorithm: str
    secret: str | None
    #: The parsed rsa_public_key (cryptography's key object) of an asymmetric algorithm.
    public_key: Any

    def __repr__(self) -> str:
        return f"<JwtSecret {self.algorithm}>"


def jwt_secret(record: dict[str, Any]) -> tuple[str, JwtSecret]:
    """(key, JwtSecret) from a jwt_secrets record; ValueError saying which field is wrong."""
    key, algorithm = record.get("key"), record.get("algorithm") or "HS256"
    secret, pem = record.get("secret"), record.get("rsa_public_key")
    if not isinstance(key, str) or not key:
        raise ValueError("key: required (the value of the token's key claim)")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm: expected one of: {', '.join(ALGORITHMS)}")
    if algorithm.startswith("HS"):
        if not isinstance(secret, str) or not secret:
            raise ValueError("secret: required for an HS algorithm")
        return key, JwtSecret(algorithm, secret, None)
    if not isinstance(pem, str) or not pem.strip():
        raise ValueError(f"rsa_public_key: required for {algorithm}")
    try:
        public_key = _VERIFIERS[algorithm].prepare_key(pem)
    except Exception:  # cryptography raises several kinds
        raise ValueError(f"rsa_public_key: not a {algorithm} public key in PEM") from None
    return key, JwtSecret(algorithm, None, public_key)


def secrets_from_env(raw: str) -> CredentialStore[JwtSecret]:
    """``consumer:key:secret,...`` HS256 secrets."""
    store: CredentialStore[JwtSecret] = CredentialStore("jwt")
    for item in names(raw):
        consumer, key, secret = [*item.split(":", 2), "", ""][:3]
        if not secret:
            raise ValueError("must be a comma-separated list of consumer:key:secret")
        store.add(consumer, *jwt_secret({"key": key, "secret": secret}))
    return store


def secrets_from_file(path: str) -> CredentialStore[JwtSecret]:
    """A YAML or JSON list of jwt_secrets records, each with its ``consumer``."""
    try:
        with open(path, encoding="utf-8") as file:
            records = yaml.safe_load(file)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read it: {getattr(exc, 'strerror', None) or exc}") from None
    if not isinstance(records, list):
        raise ValueError("expected a list of jwt_secrets records")
    store: CredentialStore[JwtSecret] = CredentialStore("jwt")
    for index, record in enumerate(records):
        try:
            if not isinstance(record, dict):
                raise ValueError("expected a record")
            store.add(str(record.get("consumer") or ""), *jwt_secret(record))
        except ValueError as exc:
            raise ValueError(f"[{index}]: {exc}") from None
    return store


def optional_names(raw: str) -> tuple[str, ...]:
    return names(raw)


def claims(raw: str) -> tuple[str, ...]:
    parsed = names(raw)
    if any(name not in ("exp", "nbf") for name in parsed):
        raise ValueError("expected exp and/or nbf")
    return parsed


def max_expiration(raw: str) -> int:
    value = int(raw) if raw.isdigit() else -1
    if not 0 <= value <= 31536000:
        raise ValueError("must be a number of seconds from 0 to 31536000")
    return value


@dataclass(frozen=True)
class JwtConfig:
    secrets: CredentialStore[JwtSecret] | None = setting(
        "GATEWAY_JWT_SECRETS", secrets_from_env, None,
        "jwt: `consumer:key:secret,...` HS256 secrets (key: the token's `iss`).", secret=True)
    secrets_file: CredentialStore[JwtSecret] | None = setting(
        "GATEWAY_JWT_SECRETS_FILE", secrets_from_file, None,
        "jwt: YAML/JSON list of Kong jwt_secrets records (consumer, key, algorithm, secret, "
        "rsa_public_key).")
    uri_param_names: tuple[str, ...] = setting(
        "GATEWAY_JWT_URI_PARAM_NAMES", optional_names, "jwt",
        "jwt: query parameters the token is looked up in.")
    cookie_names: tuple[str, ...] | None = setting(
        "GATEWAY_JWT_COOKIE_NAMES", optional_names, None, "jwt: cookies the token is looked up in.")
    header_names: tuple[str, ...] = setting(
        "GATEWAY_JWT_HEADER_NAMES", optional_names, "authorization",
        "jwt: headers the token is looked up in (`Bearer <token>`).")
    key_claim_name: str = setting(
        "GATEWAY_JWT_KEY_CLAIM_NAME", None, "iss",
        "jwt: claim (or header field) naming the credential's key.")
    claims_to_verify: tuple[str, ...] | None = setting(
        "GATEWAY_JWT_CLAIMS_TO_VERIFY", claims, None, "jwt: registered claims checked: exp, nbf.")
    maximum_expiration: int = setting(
        "GATEWAY_JWT_MAXIMUM_EXPIRATION", max_expiration, "0",
        "jwt: longest lifetime (seconds from now to exp) accepted; 0: no limit.")
    secret_is_base64: bool = setting(
        "GATEWAY_JWT_SECRET_IS_BASE64", boolean, "false",
        "jwt: the HS secrets are base64; tokens are signed with the decoded bytes.")
    anonymous: str | None = setting(
        "GATEWAY_JWT_ANONYMOUS", auth.consumer_name, None,
        "jwt: consumer given to requests without a valid token, which then pass.")
    run_on_preflight: bool = setting(
        "GATEWAY_JWT_RUN_ON_PREFLIGHT", boolean, "true",
        "jwt: also require a token on OPTIONS requests (CORS preflights).")
    realm: str | None = setting(
        "GATEWAY_JWT_REALM", auth.realm, None, "jwt: realm of `WWW-Authenticate: Bearer` on 401s.")

    def __post_init__(self) -> None:
        if self.secrets is None and self.secrets_file is None:
            raise ConfigError("jwt needs secrets: set GATEWAY_JWT_SECRETS or "
                              "GATEWAY_JWT_SECRETS_FILE")
        if self.maximum_expiration > 0 and "exp" not in (self.claims_to_verify or ()):
            raise ConfigError("jwt: maximum_expiration needs exp in claims_to_verify")


class Rejected(Exception):
    """Authentication failed: the 401's message, or the claims' errors as the JSON body."""

    def __init__(self, message: str, errors: dict[str, str] | None = None,
                 bare: bool = False) -> None:
        super().__init__(message)
        self.errors = errors
        self.bare = bare  # no token at all: the challenge has no error="invalid_token"


class Jwt(Filter):
    """Authenticates in the request phase by a signed token."""

    NAME = "jwt"
    PRIORITY = 1450  # Kong's
    VERSION = "1.0.0"
    Config = JwtConfig

    def __init__(self, config: JwtConfig, settings: Settings) -> None:
        super().__init__(config, settings)
        self.store: CredentialStore[JwtSecret] = CredentialStore("jwt")
        try:
            for given in (config.secrets, config.secrets_file):
                if given is not None:
                    self.store.update(given)
            self.keys = {key: (owned, self._prepare(owned.secret)) for key, owned in self.store}
        except ValueError as exc:
            raise ConfigError(f"jwt: {exc}") from None
        base = f'Bearer realm="{config.realm}"' if config.realm is not None else "Bearer"
        self.challenge = base
        self.challenge_error = base + (', error="invalid_token"' if config.realm is not None
                                       else ' error="invalid_token"')

    def _prepare(self, secret: JwtSecret) -> Any:
        """The key PyJWT verifies with: the HS secret (decoded) or the parsed public key."""
        if secret.public_key is not None:
            return secret.public_key
        raw = secret.secret or ""
        if not self.config.secret_is_base64:
            return _VERIFIERS[secret.algorithm].prepare_key(raw)
        try:
            url_safe = raw.replace("+", "-").replace("/", "_")
            decoded = base64.urlsafe_b64decode(url_safe + "=" * (-len(raw) % 4))
        except (binascii.Error, ValueError):
            raise ValueError("a secret is not base64 (secret_is_base64 is set)") from None
        return _VERIFIERS[secret.algorithm].prepare_key(decoded)

    def on_request(self, ex: Exchange) -> None:
        if auth.skip(ex, self.config.run_on_preflight, self.config.anonymous):
            return
        try:
            owned = self.verify(ex)
        except Rejected as failed:
            self.refuse(ex, failed)
            return
        self.store.authenticate(ex, self.NAME, owned)

    def refuse(self, ex: Exchange, failed: Rejected) -> None:
        """Pass as the anonymous consumer when configured, else 401 with Kong's body.

        Kong's jwt answers with ``kong.response.exit(401, body)``, not ``.error``: the body
        is always JSON, compact, ``{"message":...}`` (no request_id) or the claims' errors.
        """
        if self.config.anonymous is not None:
            self.store.refuse(ex, self.NAME, self.config.anonymous, str(failed))
            return
        challenge = self.challenge if failed.bare else self.challenge_error
        body = failed.errors if failed.errors is not None else {"message": str(failed)}
        ex.outcomes[self.NAME] = "rejected"
        ex.error_message = "; ".join(body.values())
        ex.respond(401, encode_json(body),
                   Headers([("WWW-Authenticate", challenge)]), "application/json; charset=utf-8")

    def tokens(self, ex: Exchange) -> set[str]:
        """Every distinct token the request carries (Kong's query, cookie, header order)."""
        found: set[str] = set()
        args = ex.request.args
        for name in self.config.uri_param_names:
            found.update(value for value in args.getlist(name) if value)
        cookies = ex.request.cookies
        for name in self.config.cookie_names or ():
            if value := cookies.get(name):
                found.add(value)
        for name in self.config.header_names:
            value = ex.upstream_headers.get(name)
            if value and (match := _BEARER.search(value)):
                found.add(match.group(1))
        return found

    def verify(self, ex: Exchange) -> auth.Owned[JwtSecret]:
        """The credential of a valid token; Rejected with Kong's message otherwise."""
        found = self.tokens(ex)
        if not found:
            raise Rejected("Unauthorized", bare=True)
        if len(found) > 1:
            raise Rejected("Multiple tokens provided")
        token = found.pop()
        header, payload, signed, signature = decode(token)
        claim = self.config.key_claim_name
        key = payload.get(claim, header.get(claim))
        if key is None or key is False:
            raise Rejected(f"No mandatory '{claim}' in claims")
        if not isinstance(key, str) or key == "":
            raise Rejected(f"Invalid '{claim}' in claims")
        entry = self.keys.get(key)
        if entry is None:
            raise Rejected(f"No credentials found for given '{claim}'")
        owned, prepared = entry
        if header.get("alg") != owned.secret.algorithm:
            raise Rejected("Invalid algorithm")
        try:
            valid = _VERIFIERS[owned.secret.algorithm].verify(signed, prepared, signature)
        except (jwt.PyJWTError, ValueError, TypeError):
            valid = False
        if not valid:
            raise Rejected("Invalid signature")
        self.check_claims(payload)
        return owned

    def check_claims(self, payload: dict[str, Any]) -> None:
        """Kong's registered-claim checks (exp, nbf) and maximum_expiration."""
        now = time.time()
        errors: dict[str, str] = {}
        for name in self.config.claims_to_verify or ():
            value = payload.get(name)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                errors[name] = "must be a number"
            elif name == "nbf" and value > now:
                errors[name] = "token not valid yet"
            elif name == "exp" and value <= now:
                errors[name] = "token expired"
        if errors:
            raise Rejected("Unauthorized", errors)
        limit = self.config.maximum_expiration
        if limit > 0:
            exp = payload.get("exp")
            if not isinstance(exp, (int, float)) or exp - now > limit:
                raise Rejected("Unauthorized", {"exp": "exceeds maximum allowed expiration"})


def decode(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """(header, claims, signing input, signature) of a token before its signature is
    checked; Rejected if malformed."""
    if token.count(".") != 2:
        raise Rejected("Bad token; invalid JSON")
    signed, _, signature = token.encode().rpartition(b".")
    head, _, body = signed.partition(b".")
    try:
        header = json.loads(base64url_decode(head))
        payload = json.loads(base64url_decode(body))
        raw_signature = base64url_decode(signature)
    except (ValueError, TypeError, binascii.Error):
        raise Rejected("Bad token; invalid JSON") from None
    if not isinstance(header, dict):
        raise Rejected("Bad token; invalid JSON")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        raise Rejected("Bad token; invalid alg")
    if not isinstance(payload, dict):
        raise Rejected("Bad token; invalid claims")
    return header, payload, signed, raw_signature
