"""The front page and quick start a new user acts on first: the README keeps the two commands,
and the quick start's dependency list matches setup.cfg."""

from __future__ import annotations

import configparser
import re

from tests.support.processes import ROOT


def install_requires() -> list[str]:
    """setup.cfg's runtime requirements, by name with extras (no version)."""
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    lines = setup["options"]["install_requires"].split("\n")
    return [re.match(r"[A-Za-z0-9_.\-]+(\[[^\]]*\])?", line.strip()).group(0)
            for line in lines if line.strip()]


def test_the_readme_keeps_the_two_commands_and_links_the_pages_it_names():
    readme = (ROOT / "README.md").read_text()
    assert "\nmake run     #" in readme and "\nmake test    #" in readme
    for page in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / page).is_file(), page


def test_the_install_line_lists_every_dependency_of_setup_cfg():
    readme = (ROOT / "docs" / "quick-start.md").read_text()
    listed = re.search(r"`pip install \.` installs the package and its dependencies\n?\(([^;)]+)",
                       readme).group(1)
    assert [name.strip() for name in listed.split(",")] == install_requires()
