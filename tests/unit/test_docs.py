"""The documentation site (docs/): its generated pages are current, the Kong compatibility
matrix has a row for every Kong plugin and entity and its claims hold in the loader, and
its code blocks run or load (a Kong file, or a fragment of one, through the real loader);
the commands and variables the pages and the README name exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from gateway import docs
from gateway.config import ServerSettings, Settings, env_names, load
from gateway.filters import known_variables, multipart
from gateway.filters.prometheus import STATES
from gateway.routing import compat
from gateway.routing import entities as e
from gateway.routing.declarative import ENTITIES, FIRST_ENTITIES, UNREAD_ENTITIES
from gateway.routing.plugins import KONG_PLUGINS, NOT_BUILT, PLUGIN_GAPS
from gateway.routing.table import file_problems
from tests.support.app import in_process
from tests.support.processes import ROOT

PAGES = sorted((ROOT / "docs").rglob("*.md"))
BLOCK = re.compile(r"^```(python|yaml)\n(.*?)^```", re.S | re.M)
BLOCKS = [(page, kind, code) for page in PAGES for kind, code in BLOCK.findall(page.read_text())]
MATRIX = (ROOT / "docs" / "kong-compatibility.md").read_text()
PLUGIN_ROWS = dict(re.findall(r"^\| `([a-z0-9-]+)` \|[^|]*\| (.+) \|$", MATRIX, re.M))
#: The top-level keys of a Kong declarative file: a yaml block holding one is (part of) one.
KONG_KEYS = {*ENTITIES, *FIRST_ENTITIES, *UNREAD_ENTITIES, "_format_version", "_transform"}
#: A yaml block that is one plugin's config starts with this comment, naming the plugin.
CONFIG_OF = re.compile(r"# the config of a ([a-z0-9-]+) plugin\n")
ENVIRON = {"DEMO_API_KEY": "k"}


def problems_of(data: dict) -> tuple[str, ...]:
    """Every blocker the gateway's loader (kong-check's) finds in a declarative file."""
    text = yaml.safe_dump({"_format_version": "3.0", **data})
    return file_problems(load(Settings, {}), text, "doc.yml", ENVIRON)


@pytest.mark.parametrize("path", list(docs.generated()), ids=lambda path: path.name)
def test_the_generated_pages_are_current(path: Path):
    assert path.read_text() == docs.generated()[path], f"{path.name} is stale: run `make docs`"


def test_every_kong_bundled_plugin_has_a_row():
    assert set(compat.BUNDLED_PLUGINS) <= set(PLUGIN_ROWS)
    assert len(compat.BUNDLED_PLUGINS) == 45
    assert PLUGIN_ROWS["key-auth"].startswith("partly (`key_in_body` only `false`")
    assert PLUGIN_ROWS["cors"] == "supported"
    assert PLUGIN_ROWS["oauth2"].startswith("not supported (its tokens")
    assert PLUGIN_ROWS["request-callout"].startswith("partly (Lua")  # Kong Enterprise's


def _refused_value(check: object) -> object:
    """A value other than the only one a field takes (any value, for a refused field)."""
    only = getattr(check, "only", None)
    if isinstance(only, bool):
        return not only
    return only + 1 if isinstance(only, int) else f"{only}-other"


@pytest.mark.parametrize("plugin, field", [
    (name, field) for name, kong in KONG_PLUGINS.items() for field, f in kong.fields.items()
    if f.check is e.unsupported or hasattr(f.check, "only")])
def test_a_field_the_matrix_calls_refused_is_refused_by_the_loader(plugin: str, field: str):
    """"not supported" and "only X" rows: another value stops the file from loading, with
    the field's path named (whatever else the bare config lacks)."""
    value = _refused_value(KONG_PLUGINS[plugin].fields[field].check)
    found = problems_of({"plugins": [{"name": plugin, "config": {field: value}}]})
    assert any(f"plugins[{plugin}].config.{field}:" in line for line in found), found


def test_request_transformer_uri_captures_and_multipart_bodies_work(mock_service):
    """The matrix's request-transformer row no longer calls them missing: a capture feeds
    a query parameter, and a multipart body's part is renamed, from a declarative file."""
    assert not re.search("uri_captures references|multipart", PLUGIN_ROWS["request-transformer"])
    text = yaml.safe_dump({"_format_version": "3.0", "services": [{
        "name": "up", "url": mock_service.url,
        "routes": [{"name": "users", "paths": [r"~/users/(?<user>\w+)$"]}],
        "plugins": [{"name": "request-transformer", "config": {
            "add": {"querystring": ["who:$(uri_captures.user)"]},
            "rename": {"body": ["a:b"]}}}]}]})
    client = in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": text})
    data, mark = multipart.encode([multipart.field("a", "1")], "xyz")
    response = client.post("/users/ann", data=data,
                           headers={"Content-Type": f"multipart/form-data; boundary={mark}"})
    assert response.status_code == 200
    seen = mock_service.calls()[-1]
    assert seen.query == {"who": "ann"}
    assert multipart.decode(seen.body, mark) == [multipart.field("b", "1")]


def test_prometheus_upstream_health_metrics_are_built():
    """The matrix's prometheus row no longer calls health check metrics missing: Kong's
    kong_upstream_target_health states, dns_error included, load and are written."""
    assert "health check and DNS metrics" not in PLUGIN_ROWS["prometheus"]
    assert set(STATES) == {"healthchecks_off", "healthy", "unhealthy", "dns_error"}
    assert problems_of({"plugins": [{"name": "prometheus",
                                     "config": {"upstream_health_metrics": True}}]}) == ()


def test_an_empty_group_of_plugins_prints_no_table(monkeypatch):
    """With every plugin built here also a bundled one, no Kong Enterprise section."""
    monkeypatch.setattr(compat, "BUNDLED_PLUGINS", (*compat.BUNDLED_PLUGINS, "request-callout"))
    page = compat.matrix()
    assert "## Kong Enterprise plugins" not in page
    assert "|---|---|---|\n\n" not in page


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
    plugin = CONFIG_OF.match(code)
    if plugin:
        data = {"plugins": [{"name": plugin.group(1), "config": data}]}
    if isinstance(data, dict) and KONG_KEYS & set(data):
        assert problems_of(data) == (), f"{page.name}: {first}"


def test_the_docs_kong_fragments_are_loaded():
    """Fragments (a plugins list, an upstream, a plugin's config) are tested, not skipped."""
    loaded = [code for _, kind, code in BLOCKS if kind == "yaml" and (
        CONFIG_OF.match(code) or KONG_KEYS & set(yaml.safe_load(code)))]
    assert len(loaded) >= 6


def test_the_kong_matrix_command_prints_the_page(capsys):
    from gateway.__main__ import main

    assert main(["kong-matrix"]) == 0
    assert capsys.readouterr().out == MATRIX


#: What a user copies from the pages: the README and the CHANGELOG too.
TEXTS = [*PAGES, ROOT / "README.md", ROOT / "CHANGELOG.md"]


def test_every_variable_the_docs_name_is_read_by_the_gateway(monkeypatch):
    """A GATEWAY_* name in a page is a setting of the gateway, of a built-in filter, or of
    the guide's example filter (examples/my-plugin): a renamed setting cannot linger."""
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "my-plugin"))
    from my_plugin.handler import MyPluginHandler

    known = (env_names([Settings, ServerSettings]) | known_variables([])
             | env_names([MyPluginHandler.Config], MyPluginHandler.NAME))
    named = {(name, path.name) for path in TEXTS
             for name in re.findall(r"\bGATEWAY_[A-Z0-9_]*[A-Z0-9]\b", path.read_text())}
    assert len(named) > 100
    assert sorted((name, page) for name, page in named if name not in known) == []


def test_every_command_the_docs_name_exists():
    """``python -m gateway X`` is a subcommand and ``make X`` a Makefile target."""
    from gateway.__main__ import USAGE

    targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.M))
    commands, makes = set(), set()
    for path in TEXTS:
        text = path.read_text()
        commands |= set(re.findall(r"python -m gateway ([a-z][a-z-]*)", text))
        makes |= {target for target in re.findall(r"`make ([a-z][a-z-]*)", text)}
        makes |= set(re.findall(r"^make ([a-z][a-z-]*)", text, re.M))
    assert {"check", "kong-check", "new-filter"} <= commands and {"run", "test"} <= makes
    assert sorted(c for c in commands if c not in re.findall(r"[a-z][a-z-]+", USAGE)) == []
    assert sorted(makes - targets) == []
