"""The one place JSON is encoded and decoded, so the library can change here alone.

ujson is the chosen codec; its maintainers call it maintenance-only and point
to orjson, which would slot in behind these two functions.
"""

from __future__ import annotations

import ujson


def encode_json(value: object) -> bytes:
    """``value`` as compact UTF-8 JSON."""
    return ujson.dumps(value, ensure_ascii=False, escape_forward_slashes=False).encode()


def decode_json(data: bytes | str) -> object:
    """Parse JSON text; raises ValueError (ujson.JSONDecodeError) on bad input."""
    return ujson.loads(data)
