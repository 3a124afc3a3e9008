"""The callouts as a graph: each waits for the callouts it depends on, no more.

Edges are ``depends_on`` plus the callouts a callout's request references (Kong runs
callouts one by one in order, so a reference to an earlier one works there without
``depends_on``; here they run at once, so a reference is a dependency too). A
cycle, an unknown or repeated name is refused at load with the place named.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from gateway.schema import Invalid

if TYPE_CHECKING:
    from gateway.filters.request_callout.plan import Callout


def dependencies(callouts: Sequence[Callout], path: str) -> dict[str, tuple[str, ...]]:
    """name -> the names it waits for; Invalid for repeated or unknown names."""
    index: dict[str, int] = {}
    for i, callout in enumerate(callouts):
        if callout.name in index:
            raise Invalid(f"{path}[{i}].name", f"callout name {callout.name!r} is used twice")
        index[callout.name] = i
    edges: dict[str, tuple[str, ...]] = {}
    for i, callout in enumerate(callouts):
        for j, name in enumerate(callout.depends_on):
            if name not in index:
                raise Invalid(f"{path}[{i}].depends_on[{j}]", f"no callout named {name!r}")
        for name in sorted(callout.refs - index.keys()):
            raise Invalid(f"{path}[{i}].request", f"references callout {name!r}, which is "
                                                  "not in callouts")
        edges[callout.name] = tuple(dict.fromkeys((*callout.depends_on, *sorted(callout.refs))))
    _refuse_cycles(edges, index, path)
    return edges


def _refuse_cycles(edges: Mapping[str, tuple[str, ...]], index: Mapping[str, int],
                   path: str) -> None:
    """Invalid naming the first cycle found (depth-first, in the file's order)."""
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> None:
        if name in done:
            return
        if name in trail:
            loop = " -> ".join([*trail[trail.index(name):], name])
            raise Invalid(f"{path}[{index[trail[-1]]}].depends_on", f"dependency cycle: {loop}")
        trail.append(name)
        for needed in edges[name]:
            visit(needed, trail)
        trail.pop()
        done.add(name)

    for name in edges:
        visit(name, [])


def closure(names: Iterable[str], edges: Mapping[str, tuple[str, ...]]) -> set[str]:
    """``names`` and every callout they wait for, directly or not."""
    found: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo.extend(edges[name])
    return found


Phases = tuple[dict[str, tuple[str, ...]], tuple[str, ...], tuple[str, ...]]


def phases(callouts: Sequence[Callout], upstream_refs: set[str], response_refs: set[str],
           path: str) -> Phases:
    """(the dependencies, the names joined before the upstream call, those joined only for
    the response), in file order.

    Every callout is joined before the upstream call (Kong's behaviour), except those
    only our ``response`` section needs (directly or through a dependency): they
    overlap the upstream call.
    """
    edges = dependencies(callouts, path)
    known = set(edges)
    for name in sorted((upstream_refs | response_refs) - known):
        where = "upstream" if name in upstream_refs else "response"
        raise Invalid(f"{path.rsplit('.', 1)[0]}.{where}",
                      f"references callout {name!r}, which is not in callouts")
    for_response = closure(response_refs, edges)
    others = {c.name for c in callouts} - for_response
    before = closure(others | upstream_refs, edges)
    order = [c.name for c in callouts]
    return (edges, tuple(n for n in order if n in before),
            tuple(n for n in order if n not in before))
