"""Hostile declarative files: the fixtures of tests/fixtures/kong/, each changed at random
places (a value of another type, an empty one, a huge one, NUL, an extra key of any YAML
type), must either load or be refused with a ConfigError, never crash the loader with
another exception. A fixed seed: the same files every run (this found four crashes)."""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest
import yaml

from gateway.config import ConfigError, Settings, load
from gateway.routing.table import file_problems
from tests.support.app import in_process
from tests.support.kong_files import KONG_FIXTURES

#: What a changed place gets.
VALUES = [None, 0, -1, "", "x", [], {}, True, 1.5, "a" * 5000, "\x00", [None], [{}],
          {"a": None}, 2**70, "/", "~/(", "http://", "a b", "::1", "*", [""], ["x"], "1e999"]
#: An extra key put in a mapping (YAML keys need not be strings).
KEYS = [1, None, True, "x", "_comment", "name", "id", 1.5]
ROUNDS = 400


def places(value: Any, path: tuple = ()) -> list[tuple]:
    """The path of every value inside ``value`` (keys and indexes from the top)."""
    found = [path]
    children = value.items() if isinstance(value, dict) else enumerate(value) \
        if isinstance(value, list) else ()
    for key, child in children:
        found += places(child, (*path, key))
    return found


def at(value: Any, path: tuple) -> Any:
    for key in path:
        value = value[key]
    return value


def changed(document: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A copy of ``document`` with one to three random changes."""
    document = yaml.safe_load(yaml.safe_dump(document))
    for _ in range(rng.randint(1, 3)):
        paths = places(document)[1:]
        if rng.random() < 0.3:
            mappings = [p for p in places(document) if isinstance(at(document, p), dict)]
            at(document, rng.choice(mappings))[rng.choice(KEYS)] = rng.choice(VALUES)
        elif paths:
            path = rng.choice(paths)
            at(document, path[:-1])[path[-1]] = rng.choice(VALUES)
    return document


@pytest.fixture(scope="module")
def documents() -> list[dict[str, Any]]:
    found = [yaml.safe_load(p.read_text()) for p in sorted(KONG_FIXTURES.glob("*.y*ml"))]
    return [d for d in found if isinstance(d, dict)]


def test_changed_files_load_or_are_refused_in_words(documents):
    rng = random.Random(20261207)
    settings = load(Settings, {"GATEWAY_UPSTREAM_URL": "http://127.0.0.1:9"})
    crashed = []
    logging.disable(logging.CRITICAL)  # the files that load log their warnings
    try:
        for _ in range(ROUNDS):
            text = yaml.safe_dump(changed(rng.choice(documents), rng))
            try:
                if not file_problems(settings, text, "fuzz", {}):
                    in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": text})
            except ConfigError:
                pass
            except Exception as exc:  # what the test looks for
                crashed.append(f"{type(exc).__name__}: {exc}\n{text}")
    finally:
        logging.disable(logging.NOTSET)
    assert crashed == []
