"""The composition root: the WSGI app that puts the layers below it together.

It reads top-down as a request flows: :mod:`gateway.server.app` answers the status
endpoints (:mod:`gateway.server.status`), finds the route (:mod:`gateway.routing`),
runs its filter chain (:mod:`gateway.filters`, which call :mod:`gateway.services`),
sends the request upstream (:mod:`gateway.proxy`, over :mod:`gateway.store` for
caches and counters) and logs and counts it (:mod:`gateway.ops`). Nothing below this
package imports it; ``tests/unit/test_layers.py`` keeps it so.
"""
