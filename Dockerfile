# The gateway in a container: gunicorn with gevent workers, configured by GATEWAY_* variables.
#   docker build -t gateway .
#   docker run -p 8000:8000 -e GATEWAY_UPSTREAM_URL=http://orders:8080 gateway
# tests/integration/test_ops_docker.py checks this file against the docs (quick start) and
# gunicorn.conf.py, and runs its install steps and CMD in a throwaway venv.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml setup.cfg README.md gunicorn.conf.py ./
COPY gateway ./gateway
RUN pip install . \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin gateway

# Defaults for the container; every other GATEWAY_* setting keeps its default
# (docs/configuration.md).
#   GATEWAY_BIND: all interfaces, so the port can be published.
#   GATEWAY_METRICS_DIR: the workers' Prometheus files, on a path the user may write.
ENV GATEWAY_BIND=0.0.0.0:8000 \
    GATEWAY_METRICS_DIR=/tmp/gateway-metrics

USER gateway
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/_gateway/health', timeout=2)"]
CMD ["gunicorn", "-c", "gunicorn.conf.py", "gateway.wsgi:app"]
