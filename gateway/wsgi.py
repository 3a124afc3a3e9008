"""The WSGI entry point for gunicorn: ``gunicorn -c gunicorn.conf.py gateway.wsgi:app``."""

from gateway.proxy.app import create_app

app = create_app()
