# syntax=docker/dockerfile:1
# The CPU serving image: the inference install (no PyTorch, Trainer, Optuna, Captum or Dash) with the ONNX Runtime
# backend, run as a non-root user. It needs no internet at start: the model comes from the MLflow registry
# (EMAILROUTER_MODEL_URI=models:/emailrouter@champion with EMAILROUTER_MLFLOW_TRACKING_URI and its credentials) or from
# a folder mounted into the container (EMAILROUTER_MODEL_URI=/models/current); every setting comes from the environment.
#   docker build -f deploy/serve.Dockerfile -t emailrouter-serve .
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY settings.ini setup.py pyproject.toml MANIFEST.in README.md LICENSE ./
COPY emailrouter ./emailrouter
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check .

FROM python:3.11-slim-bookworm
RUN useradd --create-home --uid 10001 emailrouter && install -d -o emailrouter /var/lib/emailrouter
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    EMAILROUTER_OUTPUT_DIR=/var/lib/emailrouter \
    EMAILROUTER_SERVE_BACKEND=onnx
USER 10001
WORKDIR /var/lib/emailrouter
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=120s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]
# `emailrouter serve` is `uvicorn emailrouter.serve:app` with a deadline for slow clients' request headers too
# (EMAILROUTER_READ_TIMEOUT_SECONDS) and the keep-alive timeout (EMAILROUTER_KEEPALIVE_SECONDS); the app logs its own access lines
CMD ["emailrouter", "serve", "--host", "0.0.0.0", "--port", "8000"]
