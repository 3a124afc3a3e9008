"""The shared authentication parts (gateway.filters.auth through gateway.pdk): a filter's
own scheme sets a consumer as the built-in ones do and combines with them (AND / OR)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from gateway.config import load
from gateway.filters.acl import Acl, AclConfig
from gateway.filters.basic_auth import Hashed, credentials_from_env
from gateway.pdk import (
    CONSUMER_HEADERS,
    PDK_VERSION,
    CredentialStore,
    Exchange,
    Filter,
    refuse_authentication,
    set_consumer,
    setting,
    skip_authentication,
)
from tests.support.app import in_process


@dataclass(frozen=True)
class TicketConfig:
    anonymous: str | None = setting(doc="ticket-auth: anonymous consumer.")


class TicketAuth(Filter):
    """A filter author's own scheme: ``X-Ticket: <consumer>-ok``."""

    NAME = "ticket-auth"
    PRIORITY = 1500
    VERSION = "1.0.0"
    Config = TicketConfig

    def on_request(self, ex: Exchange) -> None:
        if skip_authentication(ex, True, self.config.anonymous):
            return
        ticket = ex.request.headers.get("X-Ticket", "")
        if ticket.endswith("-ok"):
            set_consumer(ex, self.NAME, ticket[:-3], "ticket:" + ticket[:-3])
        else:
            refuse_authentication(ex, self.NAME, self.config.anonymous, "No ticket")


def client(upstream, **env):
    return in_process({"GATEWAY_UPSTREAM_URL": upstream.url, "GATEWAY_ACCESS_LOG": "off",
                       "GATEWAY_FILTERS": f"{__name__}:TicketAuth,key-auth",
                       "GATEWAY_KEYAUTH_KEYS": "bob:bk", **env})


def seen(response) -> dict[str, str]:
    return {name.lower(): value for name, value in response.json["headers"]}


def test_pdk_version_is_bumped_for_the_addition():
    major, minor, _patch = map(int, PDK_VERSION.split("."))
    assert major == 1 and minor >= 1  # added in 1.1.0, kept by every later 1.x
    assert "X-Anonymous-Consumer" in CONSUMER_HEADERS


def test_and_a_custom_scheme_and_key_auth_must_both_pass(upstream):
    gateway = client(upstream)
    assert gateway.get("/", headers={"X-Ticket": "amy-ok"}).status_code == 401
    assert gateway.get("/?apikey=bk").json["message"] == "No ticket"
    headers = seen(gateway.get("/?apikey=bk", headers={"X-Ticket": "amy-ok"}))
    assert headers["x-consumer-username"] == "bob"  # the later filter's consumer


def test_or_a_real_consumer_from_the_custom_scheme_skips_key_auth(upstream):
    gateway = client(upstream, GATEWAY_TICKET_AUTH_ANONYMOUS="anon",
                     GATEWAY_KEYAUTH_ANONYMOUS="anon")
    headers = seen(gateway.get("/", headers={"X-Ticket": "amy-ok", "X-Consumer-ID": "forged"}))
    assert headers["x-consumer-username"] == "amy"
    assert headers["x-credential-identifier"] == "ticket:amy"
    assert headers["x-consumer-id"] != "forged"
    headers = seen(gateway.get("/?apikey=bk"))
    assert headers["x-consumer-username"] == "bob" and "x-anonymous-consumer" not in headers
    headers = seen(gateway.get("/"))
    assert headers["x-anonymous-consumer"] == "true" and headers["x-consumer-username"] == "anon"


def test_credential_store_refuses_a_key_twice_and_hides_secrets():
    store: CredentialStore[str] = CredentialStore("demo")
    store.add("amy", "k1", "s3cret")
    with pytest.raises(ValueError, match="listed twice"):
        store.add("bob", "k1", "other")
    assert "s3cret" not in repr(store) and store.get("k1").consumer == "amy"


def test_passwords_are_salted_hashes_compared_in_constant_time():
    store = credentials_from_env("amy:amy:pw,bob:bob:pw")
    amy, bob = store.get("amy").secret, store.get("bob").secret
    assert isinstance(amy, Hashed) and amy.salt != bob.salt and amy.digest != bob.digest
    assert amy.matches("pw") and not amy.matches("pw ") and "pw" not in repr(amy)


def test_acl_verdicts_are_computed_once_per_consumer():
    acl = Acl(load(AclConfig, {"GATEWAY_ACL_GROUPS": "a:x,b:y", "GATEWAY_ACL_DENY": "y"}), None)
    assert acl.verdicts == {"a": "x", "b": None}
