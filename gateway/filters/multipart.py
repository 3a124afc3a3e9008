"""multipart/form-data bodies as ordered parts, for request-transformer (Kong's lua-multipart).

Parsing is Werkzeug's sans-IO decoder (lenient about line breaks as browsers and
clients need); writing is ours, as Kong's: each part's headers and data between the
request's own boundary, CRLF line breaks, no preamble or epilogue, and an empty
body for no parts. A new boundary only when there was none, or when a value holds
the old one after a line break (it would cut its part short). A part keeps the
headers it came with (filename, Content-Type) unless a rule gives it a new name or
value.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from werkzeug.http import dump_options_header, parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

#: RFC 7578 4.2 by way of the HTML standard: what cannot stand inside a quoted name.
_ESCAPES = str.maketrans({'"': "%22", "\r": "%0D", "\n": "%0A"})


@dataclass(frozen=True)
class Part:
    """One part: its name (None when its Content-Disposition has none), headers, data."""

    name: str | None
    headers: tuple[tuple[str, str], ...]
    data: bytes
    filename: str | None = None

    def renamed(self, name: str) -> Part:
        """The part under ``name``, its filename and other headers kept."""
        disposition = f'form-data; name="{_quoted(name)}"'
        if self.filename is not None:
            disposition += f'; filename="{_quoted(self.filename)}"'
        headers = [("Content-Disposition", disposition)]
        headers += [(k, v) for k, v in self.headers if k.lower() != "content-disposition"]
        return Part(name, tuple(headers), self.data, self.filename)


def _quoted(text: str) -> str:
    return text.translate(_ESCAPES)


def field(name: str, value: str) -> Part:
    """A plain field (Kong's set_simple): only a Content-Disposition header."""
    return Part(None, (), value.encode()).renamed(name)


def boundary(content_type: str) -> str | None:
    """The ``boundary`` parameter of a Content-Type, None when it has none."""
    return parse_options_header(content_type)[1].get("boundary") or None


def with_boundary(content_type: str, mark: str) -> str:
    """``content_type`` with its boundary parameter set to ``mark`` (others kept)."""
    kind, options = parse_options_header(content_type)
    return dump_options_header(kind, {**options, "boundary": mark})


def decode(body: bytes, mark: str | None) -> list[Part]:
    """The parts of ``body`` (none for an empty one); ValueError when it is not multipart
    with that boundary."""
    if not body:
        return []
    if mark is None:
        raise ValueError("its Content-Type has no boundary")
    decoder = MultipartDecoder(mark.encode())
    decoder.receive_data(body)
    decoder.receive_data(None)
    parts: list[Part] = []
    head: Field | File | None = None
    chunks: list[bytes] = []
    while True:
        event = decoder.next_event()
        if isinstance(event, (Field, File)):
            head, chunks = event, []
        elif isinstance(event, Data) and head is not None:
            chunks.append(event.data)
            if not event.more_data:
                parts.append(Part(head.name, tuple(head.headers.items()), b"".join(chunks),
                                  head.filename if isinstance(head, File) else None))
                head = None
        elif isinstance(event, (Epilogue, NeedData)):
            return parts


def encode(parts: list[Part], mark: str | None) -> tuple[bytes, str]:
    """(the body of ``parts``, the boundary it uses): ``mark``, unless it is None or a
    value would end its part early (a line break then ``--mark``: a value a client
    chose can), then a new random one."""
    while mark is None or any(_breaks(part.data, mark.encode()) for part in parts):
        mark = "----gateway" + secrets.token_hex(16)  # RFC 2046: 70 characters at most
    if not parts:
        return b"", mark
    delimiter = b"--" + mark.encode()
    out = []
    for part in parts:
        out.append(delimiter + b"\r\n")
        out += [f"{name}: {value}\r\n".encode() for name, value in part.headers]
        out += [b"\r\n", part.data, b"\r\n"]
    out.append(delimiter + b"--\r\n")
    return b"".join(out), mark


def _breaks(data: bytes, mark: bytes) -> bool:
    """Whether a reader would find a delimiter in ``data`` (it follows a line break)."""
    framed = b"\n" + data
    return b"\n--" + mark in framed or b"\r--" + mark in framed
