"""The documentation site (docs/): its generated pages are current, the Kong compatibility
matrix has a row for every Kong plugin and entity, and its code blocks run or load."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from gateway import docs
from gateway.routing import compat
from gateway.routing import entities as e
from gateway.routing.declarative import (
    ENTITIES,
    FIRST_ENTITIES,
    UNREAD_ENTITIES,
    parse_declaration,
)
from gateway.routing.plugins import KONG_PLUGINS, NOT_BUILT, PLUGIN_GAPS
from tests.support.processes import ROOT

PAGES = sorted((ROOT / "docs").rglob("*.md"))
BLOCK = re.compile(r"^```(python|yaml)\n(.*?)^```", re.S | re.M)
BLOCKS = [(page, kind, code) for page in PAGES for kind, code in BLOCK.findall(page.read_text())]
MATRIX = (ROOT / "docs" / "kong-compatibility.md").read_text()


@pytest.mark.parametrize("path", list(docs.generated()), ids=lambda path: path.name)
def test_the_generated_pages_are_current(path: Path):
    assert path.read_text() == docs.generated()[path], f"{path.name} is stale: run `make docs`"


def test_every_kong_bundled_plugin_has_a_row():
    rows = dict(re.findall(r"^\| `([a-z0-9-]+)` \|[^|]*\| (.+) \|$", MATRIX, re.M))
    assert set(compat.BUNDLED_PLUGINS) <= set(rows)
    assert len(compat.BUNDLED_PLUGINS) == 45
    assert rows["key-auth"].startswith("partly (`key_in_body` only `false`")
    assert rows["cors"] == "supported"
    assert rows["oauth2"].startswith("not supported (its tokens")
    assert rows["request-callout"] == "supported"  # Kong Enterprise's, built here


def test_every_kong_entity_has_a_row():
    rows = dict(re.findall(r"^\| `([a-z0-9_]+)` \| ([^|]+) \|$", MATRIX, re.M))
    assert set(compat.KONG_ENTITIES) | set(ENTITIES) == set(rows)
    assert rows["certificates"].startswith("not supported (TLS ends in nginx")
    assert rows["upstreams"].startswith("partly (`healthchecks`: active and passive as Kong")
    assert "`use_srv_name`: not supported (true): no SRV lookups" in rows["upstreams"]
    assert rows["targets"] == "supported"


def test_a_plugin_neither_mapped_nor_explained_stops_the_generator(monkeypatch):
    monkeypatch.setattr(compat, "BUNDLED_PLUGINS", (*compat.BUNDLED_PLUGINS, "new-one"))
    with pytest.raises(ValueError, match="plugin new-one: neither in KONG_PLUGINS nor in "
                                         "NOT_BUILT"):
        compat.matrix()


def test_a_plugin_built_and_still_explained_stops_the_generator(monkeypatch):
    monkeypatch.setitem(NOT_BUILT, "cors", "stale reason")
    with pytest.raises(ValueError, match="plugin cors is both mapped and in NOT_BUILT"):
        compat.matrix()


def test_every_reason_describes_something_the_tables_hold():
    assert set(NOT_BUILT) <= set(compat.BUNDLED_PLUGINS)
    assert set(PLUGIN_GAPS) <= set(KONG_PLUGINS)
    assert not set(UNREAD_ENTITIES) & {*ENTITIES, *FIRST_ENTITIES}
    for kind, notes in [*e.FIELD_GAPS.items(), *e.REFUSED.items()]:
        assert set(notes) <= set({**FIRST_ENTITIES, **e.ENTITY_FIELDS}[kind]), kind


def test_the_refused_table_lists_what_kong_accepts_and_the_loader_refuses():
    page = (ROOT / "docs" / "services-and-routes.md").read_text()
    rows = re.findall(r"^\| (.+?) \| .+ \|$", compat.refused_table(), re.M)
    assert compat.refused_table() in page
    for wanted in ("`upstreams.host_header`: set", "`upstreams.client_certificate`: set",
                   "`upstreams.use_srv_name`: true", "`keyauth_credentials.ttl`: set",
                   "`plugins.ordering`: set", "plugin `oauth2` (not built here)",
                   "`upstreams.healthchecks`: `active.type` grpc or grpcs with an interval "
                   "above 0", "`certificates` entities, at the top level or nested"):
        assert wanted in rows, wanted


def test_a_field_refused_without_a_reason_stops_the_generator(monkeypatch):
    monkeypatch.setitem(e.REFUSED, "upstreams", {})
    with pytest.raises(ValueError, match="entity upstreams: host_header is refused without "
                                         "a reason"):
        compat.refused_table()


def test_the_loader_reads_the_entities_the_matrix_calls_read():
    assert tuple(e.ENTITY_FIELDS) == ENTITIES
    assert {"services", "routes", "upstreams", "targets", "consumers", "plugins"} <= set(
        ENTITIES)


def test_the_docs_have_tested_code_blocks():
    kinds = [kind for _, kind, _ in BLOCKS]
    assert kinds.count("python") >= 3 and kinds.count("yaml") >= 4


@pytest.mark.parametrize("page, kind, code", BLOCKS,
                         ids=[f"{p.relative_to(ROOT / 'docs')}-{i}"
                              for i, (p, _, _) in enumerate(BLOCKS)])
def test_every_code_block_runs_or_loads(page: Path, kind: str, code: str):
    """A python block compiles; a yaml block parses, and a Kong file loads as the gateway
    loads it; a block headed by a file's path is that file's text."""
    first = code.splitlines()[0]
    shown = re.fullmatch(r"# ((?:examples|deploy)/\S+)", first)
    if shown:
        body = code.split("\n", 1)[1]
        assert body in (ROOT / shown.group(1)).read_text(), f"{page.name}: {first}"
    if kind == "python":
        compile(code, str(page), "exec")
        return
    data = yaml.safe_load(code)
    assert data, f"{page.name}: an empty yaml block"
    if isinstance(data, dict) and "_format_version" in data:
        assert parse_declaration(code, page.name, {"DEMO_API_KEY": "k"}).routes is not None


def test_the_kong_matrix_command_prints_the_page(capsys):
    from gateway.__main__ import main

    assert main(["kong-matrix"]) == 0
    assert capsys.readouterr().out == MATRIX
