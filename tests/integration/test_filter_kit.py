"""Filters written outside the gateway, as their authors ship them (issue 11): the scaffold
installs and its tests pass; the guide's example is built as a wheel, installed next to the
gateway and run under gunicorn by its entry-point name; a pdk filter under real gevent
workers reads request bodies and overlaps its third-party call with the upstream call.

The fresh virtual environment sees the gateway's own packages through a .pth file, so
plugins install offline (--no-deps --no-build-isolation)."""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from gateway.testing import GatewayProcess, assert_not_called, http_request
from tests.support.processes import ROOT

TEAPOT = "tests.support.pdk_filters:Teapot"


def run(*argv: str | Path, cwd: Path | None = None, **env: str) -> str:
    """Run a command without any GATEWAY_* variable of ours; its output (fails on an error)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    result = subprocess.run([str(a) for a in argv], cwd=cwd, env={**clean, **env},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{argv}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """The python of a fresh virtual environment that also sees the gateway's venv."""
    folder = tmp_path_factory.mktemp("plugin-venv")
    run(sys.executable, "-m", "venv", "--without-pip", folder)
    python = folder / "bin" / "python"
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    gateway_site = sysconfig.get_paths()["purelib"]
    Path(site.strip(), "_gateway_venv.pth").write_text(
        f"import site; site.addsitedir({gateway_site!r})\n")
    return python


def pip_install(python: Path, *args: str | Path) -> None:
    run(python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", *args)


def test_new_filter_writes_a_package_that_installs_and_passes_its_tests(venv, tmp_path):
    folder = tmp_path / "shout-it"
    run(sys.executable, "-m", "gateway", "new-filter", "shout-it", folder)
    tree = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert tree == ["README.md", "pyproject.toml", "shout_it/__init__.py",
                    "shout_it/handler.py", "tests/test_shout_it.py"]
    pip_install(venv, "-e", folder)
    assert "2 passed" in run(venv, "-m", "pytest", "-p", "no:cacheprovider", folder,
                             cwd=folder)
    table = run(venv, "-m", "gateway", "settings", GATEWAY_FILTERS="shout-it")
    assert "| `GATEWAY_SHOUT_IT_HEADER_NAME` | `X-ShoutIt` |" in table


def test_a_new_filter_installs_its_test_needs_beside_a_gateway_without_test_extras(tmp_path):
    """As a user who ran ``pip install .`` (no test extra) and follows the guide
    (docs/writing-a-filter.md)."""
    folder, env = tmp_path / "shout-it", tmp_path / "venv"
    run(sys.executable, "-m", "venv", env)
    python = env / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", ROOT)
    assert "No module named" in run(python, "-c", "import importlib.util as u; "
                                    "print(u.find_spec('pytest') or 'No module named pytest')")
    run(python, "-m", "gateway", "new-filter", "shout-it", folder)
    run(python, "-m", "pip", "install", "--quiet", "-e", f"{folder}[test]")
    assert "2 passed" in run(python, "-m", "pytest", "-p", "no:cacheprovider", folder,
                             cwd=folder)


def test_new_filter_refuses_a_bad_name_or_a_used_folder(tmp_path):
    for args in (["Bad_Name", tmp_path / "a"], ["ok", ROOT / "gateway"]):
        result = subprocess.run([sys.executable, "-m", "gateway", "new-filter", *map(str, args)],
                                capture_output=True, text=True)
        assert result.returncode == 2
        assert result.stderr.startswith("gateway: new-filter: ")


def test_the_example_wheel_runs_by_its_entry_point_name(venv, tmp_path, httpbin):
    source = shutil.copytree(ROOT / "examples" / "my-plugin", tmp_path / "my-plugin")
    run(venv, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
        "--wheel-dir", tmp_path / "dist", source)
    [wheel] = (tmp_path / "dist").glob("gateway_my_plugin-0.0.1-*.whl")
    pip_install(venv, wheel)
    shutil.rmtree(source / "my_plugin")  # its tests must use the installed wheel
    assert "9 passed" in run(venv, "-m", "pytest", "-p", "no:cacheprovider", source, cwd=source)
    gw = GatewayProcess({"GATEWAY_UPSTREAM_URL": httpbin, "GATEWAY_FILTERS": "my-plugin",
                         "GATEWAY_MY_PLUGIN_URL": httpbin + "/anything"}, python=str(venv))
    try:
        reply = http_request(gw.url + "/anything")
        assert reply.status_code == 200
        assert reply.headers["X-MyPlugin"] == httpbin + "/anything"
        assert reply.json["url"].endswith("/anything")  # httpbin's answer, as the upstream
    finally:
        gw.stop()


def post_chunked(url: str, pieces: list[bytes]) -> http.client.HTTPResponse:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", "/up?read", body=iter(pieces), encode_chunked=True,
                 headers={"Transfer-Encoding": "chunked"})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def test_a_pdk_filter_reads_chunked_bodies_under_gunicorn(gateway_server, mock_service):
    gw = gateway_server([TEAPOT], {"GATEWAY_TEAPOT_MAX_BODY": "16"}, upstream=mock_service.url)
    assert post_chunked(gw.url, [b"a" * 10, b"b" * 10]).status == 413
    assert_not_called(mock_service)
    assert post_chunked(gw.url, [b"a" * 6, b"b" * 6]).status == 200
    [received] = mock_service.calls("/up")
    assert (received.body, received.header("X-Body-Size")) == (b"a" * 6 + b"b" * 6, "12")


def test_a_pdk_filter_overlaps_its_call_with_the_upstream(gateway_server, mock_service):
    third = mock_service.route("/third", json={"url": "overlapped"}, delay=0.3)
    mock_service.route("/up", json={}, delay=0.3)
    gw = gateway_server([TEAPOT], {"GATEWAY_TEAPOT_LOOKUP_URL": third},
                        upstream=mock_service.url)
    http_request(gw.url + "/up?lookup")  # warm the connections
    started = time.monotonic()
    reply = http_request(gw.url + "/up?lookup")
    elapsed = time.monotonic() - started
    assert reply.headers["X-Looked-Up"] == "overlapped"
    assert elapsed < 0.6, elapsed  # one after the other would take 0.6 s or more
