"""Header rules of a proxy: hop-by-hop removal, X-Forwarded-*, Via, value safety.

RFC 9110 section 7.6.1: Connection, the names it lists, and the classic
hop-by-hop set apply to one connection only and are never forwarded. Of the
``Proxy-*`` headers only the ones Kong drops are: Proxy-Connection, and
Proxy-Authorization (for this hop) and ``Proxy`` (httpoxy) in requests,
Proxy-Authenticate in responses; a user's ``Proxy-Something`` passes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from random import getrandbits

from werkzeug.datastructures import Headers

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade",
})
#: Dropped from requests on top of HOP_BY_HOP.
REQUEST_ONLY_HOP = frozenset({"proxy-connection", "proxy-authorization", "proxy"})
#: Dropped from responses on top of HOP_BY_HOP.
RESPONSE_ONLY_HOP = frozenset({"proxy-connection", "proxy-authenticate"})
VIA = "1.1 gateway"

# Field values may hold visible ASCII, obs-text, space and tab (RFC 9110 5.5);
# CR, LF, NUL and other controls would let a value start a new header line.
_SAFE_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
#: The version (4) and variant (RFC 4122) bits of a random UUID, and their mask.
_UUID_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID_V4 = (0x4000 << 64) | (0x8000 << 48)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,200}")
# A field name is a token (RFC 9110 5.1).
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")


def is_safe_value(value: str) -> bool:
    """True if ``value`` can be written as a header value without injection."""
    return _SAFE_VALUE.fullmatch(value) is not None


def is_header_name(value: str) -> bool:
    """True if ``value`` is a valid header field name (an RFC 9110 token)."""
    return _TOKEN.fullmatch(value) is not None


def header_name(raw: str) -> str:
    """A setting's parser: a valid header name, else ValueError saying what is allowed."""
    if not is_header_name(raw):
        raise ValueError("must be a header name (letters, digits, - and the like)")
    return raw


def is_valid_request_id(value: str) -> bool:
    """True for a client-sent X-Request-ID worth keeping (short, no odd characters)."""
    return _REQUEST_ID.fullmatch(value) is not None


def new_request_id() -> str:
    """A random (version 4) UUID in its usual text form, as ``str(uuid.uuid4())`` but from
    the random module, at a third of the cost: a request id labels log lines and is no
    secret or capability, so it needs no system call for entropy (the random module is
    reseeded in every forked worker)."""
    bits = getrandbits(128) & _UUID_CLEAR | _UUID_V4
    text = f"{bits:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _connection_tokens(value: str | None) -> set[str]:
    return {token.strip().lower() for token in value.split(",")} if value else set()


def _is_hop_by_hop(lowered: str, listed: set[str], extra: frozenset[str]) -> bool:
    return lowered in HOP_BY_HOP or lowered in listed or lowered in extra


def checked_headers(pairs: list[tuple[str, str]]) -> Headers:
    """A werkzeug Headers holding ``pairs`` as they are, without werkzeug's per-field
    check for line breaks: for fields gunicorn or llhttp already refused CR, LF and NUL
    in. Headers(pairs) checks and copies each one, a fifth of the headers' cost.

    Relies on Headers keeping its fields in ``_list`` (werkzeug 3; setup.cfg pins <4).
    """
    headers = Headers()
    headers._list = pairs
    return headers


def fields(headers: Headers) -> list[tuple[str, str]]:
    """The (name, value) fields of ``headers`` in order, as ``to_wsgi_list()`` and
    ``items()`` give them, without the two generator steps werkzeug takes per field
    (a copy of ``_list``, relied on as :func:`checked_headers` does)."""
    return headers._list[:]


def drop_fields(headers: Headers, names: frozenset[str]) -> None:
    """Remove every field whose lower-cased name is in ``names``, in one pass over the
    fields (werkzeug's remove() makes one pass per name). Relies on ``_list`` as
    :func:`checked_headers` does."""
    headers._list = [field for field in headers._list if field[0].lower() not in names]


def request_headers(environ: Mapping[str, object]) -> Headers:
    """The client's end-to-end headers from a WSGI environ, hop-by-hop ones dropped.

    WSGI joins a repeated request header into one comma-separated value, which
    RFC 9110 5.3 makes equivalent. Names come back in Title-Case.
    """
    listed = _connection_tokens(environ.get("HTTP_CONNECTION"))  # type: ignore[arg-type]
    pairs = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").title()
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = key.replace("_", "-").title()
        else:
            continue
        if name == "Content-Length" and value.isdigit():
            value = str(int(value))
        if value and not _is_hop_by_hop(name.lower(), listed, REQUEST_ONLY_HOP):
            pairs.append((name, value))
    return checked_headers(pairs)


def response_headers(items: Iterable[tuple[str, str]], connection: str | None) -> Headers:
    """The upstream's end-to-end response headers, repeats (Set-Cookie) kept one by one."""
    listed = _connection_tokens(connection)
    return checked_headers([(name, value) for name, value in items
                            if not _is_hop_by_hop(name.lower(), listed, RESPONSE_ONLY_HOP)])


def set_fields(headers: Headers, replace: Headers | Iterable[tuple[str, str]],
               append: Iterable[tuple[str, str]] = (), checked: bool = False) -> None:
    """Set each ``replace`` field (that name's other fields dropped) and append each
    ``append`` value to a comma-separated field (Via, X-Forwarded-For).

    One pass over ``headers`` finds the names present; a name that is absent, the usual
    case, is simply added. werkzeug's set() scans and rebuilds the whole list for every
    name: the proxy's eleven were a fifth of a plain request's CPU. ``checked``: the
    values are the gateway's own or made of fields gunicorn already refused CR, LF and
    NUL in, so an absent name is appended without werkzeug's check of the value.
    """
    if isinstance(replace, Headers):
        replace = replace._list  # as checked_headers: a Headers' own fields, not copied
    present = {field[0].lower() for field in headers._list}
    add = headers._list.append if checked else None
    for name, value in append:
        if name.lower() in present:
            # getlist(), not get(): get() raises and catches an exception when absent.
            current = headers.getlist(name)
            headers.set(name, f"{current[0]}, {value}" if current[0] else value)
        elif add is not None:
            add((name, value))
        else:
            headers.add(name, value)
    for name, value in replace:
        if name.lower() in present:
            headers.set(name, value)
        elif add is not None:
            add((name, value))
        else:
            headers.add(name, value)


def add_forwarding(headers: Headers, environ: Mapping[str, object],
                   request_id: str | None = None, path: str | None = None,
                   prefix: str | None = None) -> None:
    """Set X-Forwarded-*, X-Real-IP and Via as a proxy hop does (and X-Request-ID if given).

    ``environ`` is the one ProxyFix produced: REMOTE_ADDR, the scheme, host and
    port are the client's own when the hops in front are trusted, and this
    hop's otherwise. X-Forwarded-For gets the address of the peer that
    connected to us appended, as nginx's $proxy_add_x_forwarded_for does.
    X-Forwarded-Path is ``path`` (the client's, as sent) and X-Forwarded-Prefix
    ``prefix`` (what strip_path removed; none: the client's is dropped), as Kong
    sets them; a trusted hop's own X-Forwarded-Path and -Prefix are kept.
    """
    original = environ.get("werkzeug.proxy_fix.orig") or environ
    trusted = original is not environ
    peer = original.get("REMOTE_ADDR")  # type: ignore[union-attr]
    replace = [
        ("X-Forwarded-Proto", str(environ["wsgi.url_scheme"])),
        ("X-Forwarded-Host", str(environ.get("HTTP_HOST") or environ["SERVER_NAME"])),
        ("X-Forwarded-Port", str(environ["SERVER_PORT"])),
    ]
    append = [("Via", VIA)]
    if peer:  # absent on unix sockets
        append.append(("X-Forwarded-For", str(peer)))
        replace.append(("X-Real-IP", str(environ["REMOTE_ADDR"])))
    if request_id is not None:
        replace.append(("X-Request-ID", request_id))
    if path is not None and not (trusted and "HTTP_X_FORWARDED_PATH" in environ):
        replace.append(("X-Forwarded-Path", path))
    if not (trusted and "HTTP_X_FORWARDED_PREFIX" in environ):
        if prefix is not None:
            replace.append(("X-Forwarded-Prefix", prefix))
        elif "HTTP_X_FORWARDED_PREFIX" in environ:
            headers.remove("X-Forwarded-Prefix")
    set_fields(headers, replace, append, checked=True)
