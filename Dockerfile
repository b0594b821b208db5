FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN useradd --create-home --uid 10001 abtest
WORKDIR /app
COPY pyproject.toml README.md ./
COPY abtest ./abtest
COPY dashboard ./dashboard
RUN pip install .

USER abtest
EXPOSE 8000
# Liveness only (see docker-compose.yml): a Redis outage must not mark the service unhealthy.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz/live', timeout=2).status == 200 else 1)"
CMD ["abtest", "serve", "--host", "0.0.0.0", "--port", "8000"]
