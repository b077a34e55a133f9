# syntax=docker/dockerfile:1
# The GPU training image: PyTorch with CUDA from the official image, the package with its `train` extra (Trainer,
# Optuna, Captum, cleanlab, MLflow). Runs `emailrouter train` or `emailrouter tune` (also under `torchrun` /
# `accelerate launch` for several GPUs); data, the MLflow server and the Optuna storage come from the environment.
#   docker build -f deploy/train.Dockerfile -t emailrouter-train .
#   docker run --gpus all -e EMAILROUTER_DATA_SOURCE=... -e EMAILROUTER_MLFLOW_TRACKING_URI=... emailrouter-train train
ARG BASE=pytorch/pytorch:2.7.1-cuda12.6-cudnn9-runtime
FROM ${BASE}
WORKDIR /src
COPY settings.ini setup.py pyproject.toml MANIFEST.in README.md LICENSE ./
COPY emailrouter ./emailrouter
# the base image's CUDA build of torch satisfies the `train` extra's torch>=2.4: pip keeps it. DL3013 asks for pinned
# versions; this installs the package being built, whose own requirements carry the ranges.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --disable-pip-version-check ".[train]" \
    && useradd --create-home --uid 10001 emailrouter && install -d -o emailrouter /var/lib/emailrouter
ENV PYTHONUNBUFFERED=1 \
    EMAILROUTER_OUTPUT_DIR=/var/lib/emailrouter \
    EMAILROUTER_PROGRESS=false
USER 10001
WORKDIR /var/lib/emailrouter
ENTRYPOINT ["emailrouter"]
CMD ["train"]
