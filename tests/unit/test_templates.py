"""request-transformer's templates (gateway.filters.templates): plain references and quoted
strings inside balanced ``$(...)``, code refused, control characters never rendered."""

from __future__ import annotations

import pytest

from gateway.filters.templates import parse

VALUES = {("headers", "x-user"): "ann", ("query_params", "q"): "7",
          ("uri_captures", "user1"): "foo", ("uri_captures", "0"): "/user1/foo",
          ("uri_captures", "1"): "foo", ("headers", "x-evil"): "a\r\nX-Injected: 1"}


def render(value: str) -> str | None:
    return parse(value).render(lambda source, name: VALUES.get((source, name)))


@pytest.mark.parametrize(("value", "expected"), [
    ("$(headers.x-user)-$(query_params['q'])", "ann-7"),
    ("/u/$(uri_captures.user1)/$(uri_captures[1])", "/u/foo/foo"),
    ('$(uri_captures[ 0 ])$(uri_captures["user1"])', "/user1/foofoo"),
    ("$(uri_captures.none or 'default1')", "default1"),
    ("$('$(uri_captures.user1)')", "$(uri_captures.user1)"),  # Kong's escape
    ('$("a (b)")', "a (b)"),
    ("unclosed $(headers.x-user", "unclosed $(headers.x-user"),
])
def test_references_and_quoted_strings_render(value, expected):
    assert render(value) == expected


@pytest.mark.parametrize("value", ["$(uri_captures.none)", "$(headers.x-evil)"])
def test_a_missing_or_unsafe_value_renders_nothing(value):
    assert render(value) is None


@pytest.mark.parametrize("value", [
    "$(10 * uri_captures.user1)", "$(headers[1])", "$(uri_captures[1] .. 'x')",
    "$(type(headers.x))", "$(('a'))",
])
def test_anything_else_is_refused_naming_the_expression(value):
    with pytest.raises(ValueError, match="is not supported by this gateway"):
        parse(value)
