"""``python -m gateway new-filter NAME DIR``: a ready filter package, the kit's way.

It writes a pyproject.toml registering the filter under the ``gateway.filters``
entry point, the filter module with its Config, tests that use the testing
kit, and a README; ``pip install -e 'DIR[test]' && pytest DIR`` passes at once (the
``test`` extra brings pytest, which a gateway installed without its own test extra
lacks).
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

from gateway.config import PREFIX

#: A filter name: what GATEWAY_FILTERS and the variable names use.
NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")

_FILES = {
    "pyproject.toml": '''\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "gateway-$name"
version = "0.1.0"
description = "The $name filter for the gateway."
requires-python = ">=3.11"
# Installed into the gateway's own environment, next to the gateway.
dependencies = ["gateway"]

# pip install -e '.[test]': pytest runs the tests with the gateway's testing kit.
[project.optional-dependencies]
test = ["pytest>=8"]

# GATEWAY_FILTERS=$name finds the filter through this entry point.
[project.entry-points."gateway.filters"]
$name = "$package.handler:$cls"

[tool.setuptools]
packages = ["$package"]

[tool.pytest.ini_options]
testpaths = ["tests"]
''',
    "$package/__init__.py": '''\
"""$name: a filter for the gateway."""
''',
    "$package/handler.py": '''\
"""$name: sets a response header (replace with what your filter does)."""

from dataclasses import dataclass

from gateway.pdk import Exchange, Filter, header_name, setting, text


@dataclass(frozen=True)
class ${cls}Config:
    """Read from ${prefix}<FIELD> variables, checked when the gateway starts."""

    header_name: str = setting(parse=header_name, default="X-$cls",
                               doc="$name: the response header to set.")
    value: str = setting(parse=text, default="hello", doc="$name: the header's value.")


class $cls(Filter):
    NAME = "$name"
    PRIORITY = 900  # higher runs earlier; see the gateway's docs/filters/index.md
    VERSION = "0.1.0"
    Config = ${cls}Config

    def on_response(self, ex: Exchange) -> None:
        """Kong's header_filter: change the status and headers before the body goes out."""
        ex.headers[self.config.header_name] = self.config.value
''',
    "tests/test_$package.py": '''\
"""$name with the gateway's testing kit: the gateway in this process, a mock upstream."""

import pytest
from $package.handler import $cls

from gateway.pdk import ConfigError
from gateway.testing import assert_called_once, assert_header


def test_the_header_is_set(gateway_client, mock_service):
    mock_service.route("/orders", json={"orders": []})
    client = gateway_client([$cls], {"${prefix}VALUE": "hi"}, upstream=mock_service.url)
    response = client.get("/orders")
    assert response.status_code == 200
    assert response.json == {"orders": []}
    assert_header(response, "X-$cls", "hi")
    assert_called_once(mock_service, "/orders")


def test_a_bad_setting_stops_the_start(gateway_client):
    with pytest.raises(ConfigError, match="${prefix}HEADER_NAME="):
        gateway_client([$cls], {"${prefix}HEADER_NAME": "not a header"})
''',
    "README.md": '''\
# $name

A filter for the gateway.

    pip install -e '.[test]'  # into the gateway's environment; test brings pytest
    pytest                    # the gateway's testing kit is a pytest plugin
    GATEWAY_FILTERS=$name gunicorn -c gunicorn.conf.py gateway.wsgi:app

Settings (environment variables, checked at start; `python -m gateway settings`
lists them when GATEWAY_FILTERS names the filter):

| Variable | Default | Meaning |
|---|---|---|
| `${prefix}HEADER_NAME` | `X-$cls` | The response header to set. |
| `${prefix}VALUE` | `hello` | The header's value. |
''',
}


def new_filter(name: str, folder: Path) -> list[Path]:
    """Write the package for filter ``name`` into ``folder`` (new or empty); the paths written.

    ValueError for a bad name or a folder that has files.
    """
    if not NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a filter name: lower-case letters, digits and "
                         "single hyphens, starting with a letter (e.g. my-filter)")
    if folder.exists() and any(folder.iterdir()):
        raise ValueError(f"{folder} is not empty")
    words = {
        "name": name,
        "package": name.replace("-", "_"),
        "cls": "".join(part.capitalize() for part in name.split("-")),
        "prefix": f"{PREFIX}{name.upper().replace('-', '_')}_",
    }
    written = []
    for relative, content in _FILES.items():
        path = folder / Template(relative).substitute(words)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(content).substitute(words))
        written.append(path)
    return written
