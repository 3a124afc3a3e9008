"""key-auth in-process: key sources and their errors, Kong's answers, upstream headers."""

from __future__ import annotations

import uuid

import pytest
from werkzeug.test import Client

from gateway.config import ConfigError, load
from gateway.filters.base import Filter
from gateway.filters.key_auth import KeyAuthConfig, KeyTable, keys_from_env, strip_query
from tests.support.app import in_process

KEYS = "alice:alice-key-1,alice:alice-key-2,bob:b0b-secret"


def client(upstream, **env: str) -> Client:
    environ = {"GATEWAY_UPSTREAM_URL": upstream.url, "GATEWAY_FILTERS": "key-auth",
               "GATEWAY_KEYAUTH_KEYS": KEYS, **env}
    return in_process(environ)


def seen_upstream(response) -> tuple[str, dict[str, str]]:
    """(target, headers by lower-case name) the fixture upstream received."""
    echo = response.json
    return echo["target"], {name.lower(): value for name, value in echo["headers"]}


def config(**env: str) -> KeyAuthConfig:
    return load(KeyAuthConfig, env)


# ---------------------------------------------------------------- configuration

def test_keys_from_env_map_keys_to_consumers_and_hide_them_in_repr():
    table = keys_from_env(KEYS)
    assert table.lookup("alice-key-2").consumer == "alice"
    assert table.lookup("b0b-secret").consumer == "bob"
    assert table.lookup("b0b-secre") is None
    assert table.lookup("") is None
    assert "secret" not in repr(config(GATEWAY_KEYAUTH_KEYS=KEYS))
    assert repr(table) == "<KeyTable of 3 keys>"


def test_each_key_has_its_own_stable_credential_id():
    first, again = keys_from_env(KEYS), keys_from_env(KEYS)
    one, two = first.lookup("alice-key-1"), first.lookup("alice-key-2")
    assert one.id != two.id
    assert one == again.lookup("alice-key-1")
    assert uuid.UUID(one.id) and "alice-key-1" not in one.id


@pytest.mark.parametrize("value", ["alice", "alice:", ":k", "alice:two words",
                                   "alice:samekey,bob:samekey"])
def test_bad_keys_are_refused_without_echoing_them(value):
    with pytest.raises(ConfigError) as error:
        config(GATEWAY_KEYAUTH_KEYS=value)
    message = str(error.value)
    assert message.startswith("GATEWAY_KEYAUTH_KEYS=<hidden>: ")
    assert "samekey" not in message and "words" not in message


def test_keys_file_skips_comments_and_blank_lines(tmp_path):
    path = tmp_path / "keys"
    path.write_text("# consumer key\n\nalice  k-1\n   \ncarol\tk-2  \n")
    table = config(GATEWAY_KEYAUTH_KEYS_FILE=str(path)).keys_file
    assert len(table) == 2
    assert table.lookup("k-2").consumer == "carol"


def test_keys_file_errors_name_the_line_never_the_key(tmp_path):
    path = tmp_path / "keys"
    path.write_text("alice k-1\nbob k-2 extra-s3cret\n")
    with pytest.raises(ConfigError, match=r"line 2: expected `consumer key`") as error:
        config(GATEWAY_KEYAUTH_KEYS_FILE=str(path))
    assert "s3cret" not in str(error.value)
    path.write_text("alice dup-s3cret\nbob dup-s3cret\n")
    with pytest.raises(ConfigError, match="line 2: a key of consumer 'bob' is listed twice"):
        config(GATEWAY_KEYAUTH_KEYS_FILE=str(path))


def test_missing_keys_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"GATEWAY_KEYAUTH_KEYS_FILE=.*cannot read it: No such"):
        config(GATEWAY_KEYAUTH_KEYS_FILE=str(tmp_path / "absent"))


def test_a_key_source_is_required():
    with pytest.raises(ConfigError, match="key-auth needs keys"):
        config()


def test_a_key_in_both_sources_is_refused(tmp_path, upstream):
    path = tmp_path / "keys"
    path.write_text("carol b0b-secret\n")
    with pytest.raises(ConfigError, match="listed in both") as error:
        client(upstream, GATEWAY_KEYAUTH_KEYS_FILE=str(path))
    assert "b0b" not in str(error.value)


@pytest.mark.parametrize(("env", "value"), [("GATEWAY_KEYAUTH_KEY_NAMES", "api key"),
                                            ("GATEWAY_KEYAUTH_KEY_NAMES", ","),
                                            ("GATEWAY_KEYAUTH_REALM", 'a"b'),
                                            ("GATEWAY_KEYAUTH_ANONYMOUS", "x\ny")])
def test_bad_names_are_refused(env, value):
    with pytest.raises(ConfigError, match=env):
        config(GATEWAY_KEYAUTH_KEYS=KEYS, **{env: value})


def test_strip_query_drops_only_the_named_parameters_byte_for_byte():
    query = "a=%20x&apikey=k&b&api%6Bey=k2&c=%2B&apikey&&d=apikey"
    assert strip_query(query, ("apikey",)) == "a=%20x&b&c=%2B&&d=apikey"
    assert strip_query("apikey=1", ("apikey",)) == ""


# ---------------------------------------------------------------- requests

def test_missing_key_is_401_with_kongs_words_and_challenge(upstream):
    before = upstream.hits["/echo"]
    response = client(upstream).get("/echo")
    assert response.status_code == 401
    assert response.json["message"] == "No API key found in request"
    assert response.headers["WWW-Authenticate"] == 'Key'  # Kong: no realm unless set
    assert upstream.hits["/echo"] == before


def test_wrong_key_is_401_unauthorized_as_kong_3(upstream):
    c = client(upstream, GATEWAY_KEYAUTH_REALM="orders")
    for response in (c.get("/echo", headers={"apikey": "nope"}), c.get("/echo?apikey=nope")):
        assert response.status_code == 401
        assert response.json["message"] == "Unauthorized"
        assert response.headers["WWW-Authenticate"] == 'Key realm="orders"'


def test_valid_key_in_a_header_reaches_the_upstream_with_the_consumer(upstream):
    response = client(upstream).get("/echo", headers={"apikey": "alice-key-2"})
    assert response.status_code == 200
    _, headers = seen_upstream(response)
    assert headers["x-consumer-username"] == "alice"
    assert uuid.UUID(headers["x-consumer-id"])
    assert headers["x-credential-identifier"] == keys_from_env(KEYS).lookup("alice-key-2").id
    assert "x-anonymous-consumer" not in headers
    assert headers["apikey"] == "alice-key-2"  # hide_credentials is off by default


def test_valid_key_in_the_query_and_under_any_configured_name(upstream):
    c = client(upstream, GATEWAY_KEYAUTH_KEY_NAMES="apikey,X-API-Key")
    response = c.get("/echo?x=1&apikey=b0b-secret")
    assert response.status_code == 200
    target, headers = seen_upstream(response)
    assert headers["x-consumer-username"] == "bob"
    assert target == "/echo?x=1&apikey=b0b-secret"
    response = c.get("/echo", headers={"x-api-key": "alice-key-1"})
    assert seen_upstream(response)[1]["x-consumer-username"] == "alice"


def test_a_header_key_wins_over_a_query_key_of_the_same_name(upstream):
    response = client(upstream).get("/echo?apikey=nope", headers={"apikey": "b0b-secret"})
    assert response.status_code == 200


def test_key_in_query_can_be_turned_off(upstream):
    response = client(upstream, GATEWAY_KEYAUTH_KEY_IN_QUERY="false").get("/echo?apikey=b0b-secret")
    assert response.json["message"] == "No API key found in request"
    response = client(upstream, GATEWAY_KEYAUTH_KEY_IN_HEADER="false").get(
        "/echo", headers={"apikey": "b0b-secret"})
    assert response.json["message"] == "No API key found in request"


def test_a_repeated_query_key_is_refused(upstream):
    response = client(upstream).get("/echo?apikey=b0b-secret&apikey=alice-key-1")
    assert response.status_code == 401
    assert response.json["message"] == "Duplicate API key found"


def test_client_sent_consumer_headers_never_reach_the_upstream(upstream):
    spoofed = {"X-Consumer-Username": "admin", "X-Consumer-ID": "1", "X-Consumer-Custom-ID": "1",
               "X-Credential-Identifier": "1", "X-Anonymous-Consumer": "false",
               "apikey": "b0b-secret"}
    _, headers = seen_upstream(client(upstream).get("/echo", headers=spoofed))
    assert headers["x-consumer-username"] == "bob"
    assert headers["x-consumer-id"] != "1" and headers["x-credential-identifier"] != "1"
    assert "x-consumer-custom-id" not in headers and "x-anonymous-consumer" not in headers


def test_hide_credentials_strips_the_key_from_headers_and_query(upstream):
    c = client(upstream, GATEWAY_KEYAUTH_HIDE_CREDENTIALS="true",
               GATEWAY_KEYAUTH_KEY_NAMES="apikey,token")
    response = c.get("/echo?q=%20a&apikey=b0b-secret&z=1", headers={"token": "x"})
    target, headers = seen_upstream(response)
    assert target == "/echo?q=%20a&z=1"
    assert "apikey" not in headers and "token" not in headers
    assert headers["x-consumer-username"] == "bob"
    response = c.get("/echo", headers={"apikey": "alice-key-1"})
    target, headers = seen_upstream(response)
    assert target == "/echo" and "apikey" not in headers


def test_anonymous_consumer_passes_requests_without_a_valid_key(upstream):
    c = client(upstream, GATEWAY_KEYAUTH_ANONYMOUS="guest")
    for response in (c.get("/echo"), c.get("/echo", headers={"apikey": "nope"})):
        assert response.status_code == 200
        _, headers = seen_upstream(response)
        assert headers["x-anonymous-consumer"] == "true"
        assert headers["x-consumer-username"] == "guest"
        assert "x-credential-identifier" not in headers
    _, headers = seen_upstream(c.get("/echo", headers={"apikey": "b0b-secret"}))
    assert headers["x-consumer-username"] == "bob" and "x-anonymous-consumer" not in headers


def test_preflight_needs_a_key_unless_told_otherwise(upstream):
    assert client(upstream).options("/echo").status_code == 401
    response = client(upstream, GATEWAY_KEYAUTH_RUN_ON_PREFLIGHT="false").options(
        "/echo", headers={"X-Consumer-Username": "admin", "X-Anonymous-Consumer": "false"})
    assert response.status_code == 200
    forged = {"x-consumer-username", "x-anonymous-consumer"} & set(seen_upstream(response)[1])
    assert not forged  # an unauthenticated preflight cannot pose as a consumer


def test_consumer_and_outcome_are_left_for_later_filters(upstream):
    environ = {"GATEWAY_UPSTREAM_URL": upstream.url, "GATEWAY_FILTERS": "key-auth",
               "GATEWAY_KEYAUTH_KEYS": KEYS}
    seen = []

    class Later(Filter):
        NAME, PRIORITY, VERSION, Config = "later", 900, "0", object

        def on_request(self, ex):
            seen.append((ex.consumer.username, dict(ex.outcomes)))

    c = in_process(environ, [Later(None, None)])
    c.get("/echo", headers={"apikey": "alice-key-1"})
    assert seen == [("alice", {"key-auth": "authenticated"})]


def test_key_table_refuses_keys_with_spaces_or_controls():
    table = KeyTable()
    for key in ("", "a b", "a\nb"):
        with pytest.raises(ValueError):
            table.add("alice", key)


def test_a_consumer_custom_id_that_cannot_go_in_a_header_refuses_the_file():
    kong = ('{"_format_version": "3.0", "services": [{"name": "a", "url": "http://127.0.0.1:9",'
            ' "routes": [{"paths": ["/"], "plugins": [{"name": "key-auth"}]}]}],'
            ' "consumers": [{"username": "bob", "custom_id": "a\\r\\nX-Evil: 1"}]}')
    with pytest.raises(ConfigError, match=r"consumers\[bob\]: .*control characters"):
        in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": kong})
