# syntax=docker/dockerfile:1
# The dashboard image: the inference install plus the `dashboard` extra (Dash, gunicorn), non-root. `emailrouter
# dashboard` serves it with gunicorn (one threaded worker; --threads, default 4) and stops gracefully on SIGTERM. It
# reads the prediction log (EMAILROUTER_LOG_URL) and asks for a login (EMAILROUTER_DASHBOARD_USERNAME / _PASSWORD),
# without which it refuses to listen beyond loopback. EMAILROUTER_DASHBOARD_SECRET_KEY signs the login's session
# cookie; unset, a random key is drawn at each start (enough for one replica; several need the same key).
#   docker build -f deploy/dashboard.Dockerfile -t emailrouter-dashboard .
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY settings.ini setup.py pyproject.toml MANIFEST.in README.md LICENSE ./
COPY emailrouter ./emailrouter
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check ".[dashboard]"

FROM python:3.11-slim-bookworm
RUN useradd --create-home --uid 10001 emailrouter && install -d -o emailrouter /var/lib/emailrouter
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    EMAILROUTER_OUTPUT_DIR=/var/lib/emailrouter
USER 10001
WORKDIR /var/lib/emailrouter
EXPOSE 8050
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s \
    CMD ["python", "-c", "import socket; socket.create_connection(('127.0.0.1', 8050), timeout=2).close()"]
ENTRYPOINT ["emailrouter", "dashboard", "--host", "0.0.0.0", "--port", "8050"]
