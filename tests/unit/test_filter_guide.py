"""The guide (docs/writing-a-filter.md) agrees with examples/my-plugin and the scaffold, and
the example reads like the guide (issue 11)."""

from __future__ import annotations

import re

import pytest

from gateway.config import describe
from gateway.scaffold import new_filter
from tests.support.processes import ROOT

EXAMPLE = ROOT / "examples" / "my-plugin"
SECTION = (ROOT / "docs" / "writing-a-filter.md").read_text()
BLOCKS = re.findall(r"^```\w*\n# (examples/my-plugin/\S+)\n(.*?)^```", SECTION, re.S | re.M)


def test_the_section_shows_the_example_handler_whole_and_its_tests_and_entry_point():
    assert {path for path, _ in BLOCKS} == {
        "examples/my-plugin/my_plugin/handler.py", "examples/my-plugin/tests/test_my_plugin.py",
        "examples/my-plugin/pyproject.toml"}
    handler = dict(BLOCKS)["examples/my-plugin/my_plugin/handler.py"]
    assert handler == (EXAMPLE / "my_plugin" / "handler.py").read_text()


@pytest.mark.parametrize("path, code", BLOCKS, ids=[path for path, _ in BLOCKS])
def test_code_in_the_guide_is_the_examples(path, code):
    assert code in (ROOT / path).read_text(), f"the guide's block differs from {path}"


def test_the_settings_table_is_the_examples(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    from my_plugin.handler import MyPluginHandler

    rows = describe(MyPluginHandler.Config, MyPluginHandler.NAME)
    assert [env for env, _, _ in rows] == ["GATEWAY_MY_PLUGIN_URL",
                                           "GATEWAY_MY_PLUGIN_RESPONSE_HEADER_NAME",
                                           "GATEWAY_MY_PLUGIN_ON_ERROR"]
    for env, default, doc in rows:
        shown = f"`{default}`" if default else ""
        assert f"| `{env}` | {shown} | {doc} |".replace("|  |", "| |") in SECTION


def test_the_scaffold_tree_is_the_one_shown(tmp_path):
    written = new_filter("my-filter", tmp_path / "my-filter")
    shown = re.search(r"    my-filter/\n((?:      \S+.*\n)+)", SECTION).group(1)
    listed = [line.split()[0] for line in shown.splitlines()]
    assert sorted(listed) == sorted(p.relative_to(tmp_path / "my-filter").as_posix()
                                    for p in written)


def test_the_example_handler_stays_about_the_guides_length():
    handler = (EXAMPLE / "my_plugin" / "handler.py").read_text()
    code = [line for line in handler.splitlines() if line.strip()]
    assert len(code) <= 50, len(code)
    assert 'NAME = "my-plugin"' in handler and "PRIORITY = 1000" in handler
    assert 'VERSION = "0.0.1"' in handler
    assert "import gateway." not in handler and re.findall(r"from (\S+) import", handler) == [
        "dataclasses", "gateway.pdk"]
