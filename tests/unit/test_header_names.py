"""gateway/ops/header_names.py: which header names with `_` reach the environ."""

from __future__ import annotations

import pytest

from gateway.ops.header_names import unambiguous


def test_without_underscores_the_same_list_comes_back():
    headers = [("HOST", "a"), ("X-TENANT", "t")]
    assert unambiguous(headers) is headers


def test_an_underscore_name_alone_is_kept():
    assert unambiguous([("API_KEY", "k"), ("HOST", "a")]) == [("API_KEY", "k"), ("HOST", "a")]


def test_two_spellings_of_one_name_keep_only_the_dashed_ones():
    kept = unambiguous([("API_KEY", "a"), ("API-KEY", "b"), ("X_A-B", "c"), ("X-A_B", "d")])
    assert kept == [("API-KEY", "b")]


@pytest.mark.parametrize("name", ["CONTENT_LENGTH", "CONTENT_TYPE", "TRANSFER_ENCODING",
                                  "SCRIPT_NAME", "X_REAL_IP", "X_FORWARDED_FOR",
                                  "X-FORWARDED_PROTO", "KEEP_ALIVE"])
def test_guarded_names_are_dropped_even_alone(name):
    assert unambiguous([(name, "v"), ("HOST", "a")]) == [("HOST", "a")]
