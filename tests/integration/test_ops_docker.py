"""The Dockerfile, without a Docker engine: it agrees with the docs and gunicorn.conf.py,
and its install steps and CMD work from a clean copy in a throwaway venv."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import pytest

from gateway.config import ServerSettings, Settings, load
from tests.support.net import free_port, wait_for_port
from tests.support.processes import ROOT, Process


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    lines = [line for line in (ROOT / "Dockerfile").read_text().splitlines()
             if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [(word.upper(), rest.strip()) for word, _, rest in
            (line.strip().partition(" ") for line in joined.splitlines() if line.strip())]


def one(name: str) -> str:
    found = [args for word, args in instructions() if word == name]
    assert len(found) == 1, f"expected one {name} in the Dockerfile, found {len(found)}"
    return found[0]


def image_env() -> dict[str, str]:
    env = {}
    for word, args in instructions():
        if word == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", args)))
    return env


def quick_start_command() -> str:
    match = re.search(r"^GATEWAY_UPSTREAM_URL=\S+ (gunicorn .+)$",
                      (ROOT / "docs" / "quick-start.md").read_text(), re.M)
    assert match, "the quick start's production command is missing"
    return match.group(1).strip()


def test_cmd_is_the_quick_starts_production_command():
    assert " ".join(json.loads(one("CMD"))) == quick_start_command()


def test_exposed_port_matches_the_bind_and_gunicorn_conf():
    port = one("EXPOSE")
    bind = image_env()["GATEWAY_BIND"]
    assert bind == f"0.0.0.0:{port}"  # reachable from outside the container
    default = load(ServerSettings, {}).bind  # what gunicorn.conf.py binds without the variable
    assert default.rpartition(":")[2] == port
    status_path = load(Settings, {"GATEWAY_UPSTREAM_URL": "http://u"}).status_path
    assert f"http://127.0.0.1:{port}{status_path}/health" in one("HEALTHCHECK")


def test_runs_as_a_non_root_user_on_a_slim_python():
    assert one("USER") not in ("root", "0")
    assert re.fullmatch(r"python:3\.1[1-9]-slim\S*", one("FROM"))


@pytest.fixture(scope="module")
def clean_install() -> tuple[Path, Path]:
    """The files the Dockerfile copies, in a fresh directory, pip-installed into a fresh venv."""
    work = Path(tempfile.mkdtemp(prefix="docker-like-"))
    app = work / "app"
    app.mkdir()
    for word, args in instructions():
        if word == "COPY":
            *sources, dest = args.split()
            for source in sources:
                target = app / dest / source if dest.endswith("/") else app / dest
                copy = shutil.copytree if (ROOT / source).is_dir() else shutil.copy
                copy(ROOT / source, target)
    subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True)
    pip = [str(work / "venv" / "bin" / "pip"), "install", "--quiet", "."]
    subprocess.run(pip, cwd=app, check=True, timeout=300)
    yield app, work / "venv" / "bin"
    shutil.rmtree(work, ignore_errors=True)


def test_install_steps_and_cmd_work_from_a_clean_copy(clean_install, fixture_server):
    app, bin_dir = clean_install
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(image_env(), PATH=f"{bin_dir}:{env['PATH']}",
               GATEWAY_BIND=f"127.0.0.1:{port}", GATEWAY_UPSTREAM_URL=fixture_server.url,
               GATEWAY_METRICS_DIR=str(app / "metrics"))
    process = Process("docker-cmd", json.loads(one("CMD")), env=env, cwd=app)
    try:
        wait_for_port(port, process.popen)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/echo", timeout=10) as response:
            assert response.status == 200
        healthcheck = json.loads(one("HEALTHCHECK").partition("CMD ")[2])
        healthcheck = [arg.replace(":8000/", f":{port}/") for arg in healthcheck]
        assert subprocess.run(healthcheck, env=env, timeout=10).returncode == 0
    finally:
        process.stop()
    assert "Booting worker" in process.logs()
