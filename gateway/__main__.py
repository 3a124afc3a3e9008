"""Command line: ``python -m gateway check`` validates the environment and the declarative
file; ``kong-check FILE`` lists every blocker of a Kong declarative file; ``settings``
prints the settings table in Markdown (with the filters GATEWAY_FILTERS names that are not
built in); ``docs`` writes the generated pages of docs/ (that table in the configuration
page, the Kong compatibility matrix, the refused table of services-and-routes.md, the
home page); ``kong-matrix`` prints the matrix;
``new-filter NAME DIR`` writes a filter package."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.config import ConfigError, ServerSettings, Settings, load, names
from gateway.docs import settings_table

if TYPE_CHECKING:
    from gateway.filters.base import Filter

USAGE = ("usage: python -m gateway check|kong-check FILE|settings|docs|kong-matrix|new-filter  "
         "(python -m gateway check --help)")
CHECK_HELP = """usage: python -m gateway check

Validates every GATEWAY_* variable in this environment as `gunicorn -c gunicorn.conf.py`
reads them at start or reload: the server's (GATEWAY_BIND, GATEWAY_WORKERS, timeouts),
the proxy's and the enabled filters', and the declarative file (GATEWAY_DECLARATIVE_CONFIG
or GATEWAY_DECLARATIVE_CONFIG_STRING) when there is one. Prints "configuration OK" and
exits 0, or prints one line naming the bad variable (or, for the file, every problem, one
a line naming its entity and field) and exits 2. Warns about settings of filters that are
not enabled. Run it in the gateway's environment before a reload."""


def enabled_custom_filters() -> list[type[Filter]]:
    """The filter classes os.environ's GATEWAY_FILTERS names (ConfigError if one is bad)."""
    from gateway.filters import enabled_classes

    return enabled_classes(names(os.environ.get("GATEWAY_FILTERS", "")))


def new_filter_command(args: list[str]) -> int:
    """``new-filter NAME DIR``: write a filter package (see gateway.scaffold)."""
    from gateway.scaffold import new_filter

    if len(args) != 2:
        print("usage: python -m gateway new-filter NAME DIR", file=sys.stderr)
        return 64
    try:
        written = new_filter(args[0], Path(args[1]))
    except ValueError as exc:
        print(f"gateway: new-filter: {exc}", file=sys.stderr)
        return 2
    print("\n".join(str(path) for path in written))
    return 0


def check(args: list[str]) -> int:
    """``python -m gateway check``: what gunicorn.conf.py and every worker will load."""
    if args:
        wants_help = args == ["-h"] or args == ["--help"]
        print(CHECK_HELP, file=sys.stdout if wants_help else sys.stderr)
        return 0 if wants_help else 64
    from gateway.server.app import create_app

    logging.basicConfig(format="gateway: %(levelname)s: %(message)s")
    try:
        load(ServerSettings, os.environ)
        create_app()
    except ConfigError as exc:
        print(f"gateway: configuration error: {exc}", file=sys.stderr)
        return 2
    print("configuration OK")
    return 0


KONG_CHECK_HELP = """usage: python -m gateway kong-check FILE

Reads FILE, a Kong declarative file (kong.yml, YAML or JSON; _format_version 1.1, 2.1 or
3.0), as GATEWAY_DECLARATIVE_CONFIG=FILE would at start, and prints every problem that
stops it from loading, one line each with its place (services[orders].routes[0].paths[1]:
...), then exits 2; or prints what it holds and exits 0. The plugins' settings that come
from the environment (GATEWAY_REDIS_URL...) are read from this one."""


def kong_check(args: list[str]) -> int:
    """``python -m gateway kong-check FILE``: every blocker of a Kong file at once."""
    if len(args) != 1 or args[0] in ("-h", "--help"):
        wants_help = args in (["-h"], ["--help"])
        print(KONG_CHECK_HELP, file=sys.stdout if wants_help else sys.stderr)
        return 0 if wants_help else 64
    from gateway.routing.declarative import SNAPSHOT_ENV, declaration_source, read_declaration
    from gateway.routing.table import file_problems

    environ = {k: v for k, v in os.environ.items() if k not in (
        "GATEWAY_DECLARATIVE_CONFIG", "GATEWAY_DECLARATIVE_CONFIG_STRING", SNAPSHOT_ENV)}
    try:
        text, origin = declaration_source(environ, args[0], None) or ("", "")
        problems = file_problems(load(Settings, environ), text, origin, environ)
    except ConfigError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    if problems:
        print("\n".join(problems))
        print(f"{args[0]}: {len(problems)} problem{'s' if len(problems) > 1 else ''}: the "
              "file does not load", file=sys.stderr)
        return 2
    decl = read_declaration(text, origin, environ)
    print(f"{args[0]}: loads ({len(decl.services)} services, {len(decl.routes)} routes, "
          f"{len(decl.plugins)} plugins)")
    return 0


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "new-filter":
        return new_filter_command(argv[1:])
    if command == "check":
        return check(argv[1:])
    if command == "kong-check":
        return kong_check(argv[1:])
    if command == "settings":
        try:
            print(settings_table(enabled_custom_filters()))
        except ConfigError as exc:
            print(f"gateway: configuration error: {exc}", file=sys.stderr)
            return 2
        return 0
    if command == "docs":
        from gateway import docs

        for path in docs.write():
            print(path)
        return 0
    if command == "kong-matrix":
        from gateway.routing.compat import matrix

        print(matrix(), end="")
        return 0
    if command in ("-h", "--help"):
        print(USAGE)
        return 0
    print(USAGE, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
