"""The WSGI entry point for gunicorn: ``gunicorn -c gunicorn.conf.py gateway.wsgi:app``."""

from gateway.proxy.request import limit_chunk_sizes
from gateway.server.app import create_app

limit_chunk_sizes()
app = create_app()
