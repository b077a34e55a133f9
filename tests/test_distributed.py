"""Multi-process training through PyTorch's own launcher: `torchrun` starts two CPU processes (the gloo backend) that
run the same `emailrouter train` with DistributedDataParallel on a tiny model. The run must come out as one: one
MLflow run with its metrics logged once, one registered model, a model folder like a single process's."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from emailrouter.testing import EMAILROUTER_CLI

BIN = Path(sys.executable).parent


def train(cmd_prefix, out, runs, encoder):
    runs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "EMAILROUTER_OUTPUT_DIR": str(runs), "EMAILROUTER_PROGRESS": "false", "OMP_NUM_THREADS": "1"}
    cmd = [
        *cmd_prefix,
        "--log-level",
        "WARNING",
        "train",
        "demo:300",
        "--base-model",
        str(encoder),
        "--max-steps",
        "4",
        "--batch-size",
        "8",
        "--max-length",
        "32",
        "--out",
        str(out),
        "--promote",
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=runs)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    return p


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from emailrouter.testing import tiny_encoder

    root = tmp_path_factory.mktemp("ddp")
    encoder = tiny_encoder(root / "encoder", "bert")
    single = train([EMAILROUTER_CLI], root / "single", root / "single-runs", encoder)
    ddp = train(
        [str(BIN / "torchrun"), "--standalone", "--nproc-per-node", "2", "--no-python", EMAILROUTER_CLI],
        root / "ddp",
        root / "ddp-runs",
        encoder,
    )
    return root, single, ddp


def mlflow_client(runs_dir):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{runs_dir / 'mlflow.db'}")


def only_run(runs_dir):
    client = mlflow_client(runs_dir)
    found = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(found) == 1, f"{len(found)} MLflow runs in {runs_dir.name}, expected one"
    return found[0]


def test_two_processes_one_run(runs):
    root, _, ddp = runs
    assert "x 2 processes" in ddp.stdout and ddp.stdout.count("model folder:") == 1
    client = mlflow_client(root / "ddp-runs")
    run = only_run(root / "ddp-runs")
    assert run.info.status == "FINISHED"
    for key in run.data.metrics:  # every step's value logged once, not once per process
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert len(steps) == len(set(steps)), f"{key} logged {len(steps)} times for {len(set(steps))} steps"
    versions = client.search_model_versions("name='emailrouter'")
    assert (
        len(versions) == 1
        and client.get_model_version_by_alias("emailrouter", "champion").version == versions[0].version
    )


def test_same_shape_as_one_process(runs):
    root, _, _ = runs
    files = lambda d: sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())
    assert files(root / "ddp" / "model") == files(root / "single" / "model")
    assert set(only_run(root / "ddp-runs").data.metrics) == set(only_run(root / "single-runs").data.metrics)


def test_distributed_needs_one_folder(tmp_path):
    env = {**os.environ, "EMAILROUTER_OUTPUT_DIR": str(tmp_path), "RANK": "0", "WORLD_SIZE": "2"}
    p = subprocess.run([EMAILROUTER_CLI, "train", "demo:300"], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 2 and "distributed training needs --out" in p.stderr
