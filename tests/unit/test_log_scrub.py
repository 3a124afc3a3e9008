"""gunicorn's error-log messages, scrubbed of the client's data."""

from __future__ import annotations

import logging
import sys

import pytest

from gateway.ops.logjson import JsonFormatter, ScrubClientData, scrub


@pytest.mark.parametrize("message, scrubbed", [
    ("Invalid request from ip=10.0.0.1: Invalid HTTP request line: 'GET /k?apikey=s1 HTTP/1.1'",
     "Invalid request from ip=10.0.0.1: Invalid HTTP request line: <redacted>"),
    ("Invalid request from ip=10.0.0.1: Invalid HTTP Header: 'X-Key: s2\\x01'",
     "Invalid request from ip=10.0.0.1: Invalid HTTP Header: <redacted>"),
    ("Unable to comply with expectation: \"s3 it's\"",
     "Unable to comply with expectation: <redacted>"),
    ("Invalid chunk size: b'zz'", "Invalid chunk size: <redacted>"),
    ("Error handling request GET /k?apikey=s4", "Error handling request GET /k?<redacted>"),
    ("Invalid HTTP Header: 'CONTENT-LENGTH'", "Invalid HTTP Header: 'CONTENT-LENGTH'"),
    ("Booting worker with pid: 42", "Booting worker with pid: 42"),
])
def test_quoted_text_and_query_strings_are_redacted(message, scrubbed):
    assert scrub(message) == scrubbed


def test_a_record_and_its_traceback_are_scrubbed():
    try:
        raise ValueError("bad value 's5'")
    except ValueError:
        record = logging.LogRecord("gunicorn.error", logging.ERROR, __file__, 1,
                                   "Error handling request %s %s", ("GET", "/k?apikey=s6"),
                                   sys.exc_info())
    assert ScrubClientData().filter(record)
    line = JsonFormatter().format(record)
    assert "s5" not in line and "s6" not in line
    assert "ValueError" in line and "/k?<redacted>" in line
