# logs-gateway container image: `docker build -t logs-gateway .`
# Secrets come at run time (LOGS_GATEWAY_JWT_SECRET, or a mounted JWKS file); none are built in.

# -- build: install the package and its dependencies into a virtualenv -------------------
FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY clients/python ./clients/python
# gateway/web/lib links here: the Logs page serves the JS client the wheel copies in.
COPY clients/web ./clients/web
RUN /opt/venv/bin/pip install --no-cache-dir .

# -- run: the virtualenv only, as an unprivileged user --------------------------------------
FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin gateway
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LOGS_GATEWAY_HOST=0.0.0.0
USER 10001:10001
EXPOSE 3002 50051
# Liveness on /health, on whatever HTTP port the container was given.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('LOGS_GATEWAY_HTTP_PORT', '3002') + '/health', timeout=2)"]
# SIGTERM drains (grace LOGS_GATEWAY_GRACE_SECONDS, default 10 s): give the container longer.
STOPSIGNAL SIGTERM
ENTRYPOINT ["logs-gateway"]
CMD ["serve"]
