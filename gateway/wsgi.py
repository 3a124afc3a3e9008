"""The WSGI entry point for gunicorn: ``gunicorn -c gunicorn.conf.py gateway.wsgi:app``."""

from gateway.proxy.app import create_app
from gateway.proxy.request import limit_chunk_sizes

limit_chunk_sizes()
app = create_app()
