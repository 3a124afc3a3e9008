"""Operations: status endpoints, Prometheus metrics, access and error logs.

gunicorn.conf.py imports ``logjson`` and ``metricsdir`` in the master, before
gevent patches the standard library: those two (and this file) must import
nothing that pulls in gevent, ssl, urllib3 or prometheus_client (which imports
urllib.request, hence ssl). The other modules are imported by workers only.
"""
