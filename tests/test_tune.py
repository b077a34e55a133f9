"""Tuning across processes: two `emailrouter tune` workers sharing one study on the PostgreSQL and MariaDB servers, a
worker killed mid-trial and its study resumed, the best trial retrained into a registered model, and bad input."""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from conftest import server_database

from emailrouter.core import load_settings
from emailrouter.demo import make_demo_corpus
from emailrouter.registry import configure_mlflow
from emailrouter.testing import tiny_encoder

EMAILROUTER = str(Path(sys.executable).with_name("emailrouter"))
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    "300 demo mails as CSV, a tiny random ConvBERT as the base model, and the environment a worker runs with."
    root = tmp_path_factory.mktemp("tune")
    make_demo_corpus(300, seed=1).to_csv(root / "mails.csv", index=False)
    enc = tiny_encoder(root / "encoder", "convbert")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EMAILROUTER_")},
        "EMAILROUTER_BASE_MODEL": str(enc),
        "EMAILROUTER_OUTPUT_DIR": str(root / "runs"),
        "EMAILROUTER_PROGRESS": "false",
        "EMAILROUTER_MIN_EXAMPLES_PER_LABEL": "5",
        "EMAILROUTER_TUNE_HEARTBEAT_SECONDS": "1",
        "EMAILROUTER_LOG_LEVEL": "WARNING",
    }
    configure_mlflow(
        load_settings(output_dir=root / "runs")
    )  # the MLflow store exists before workers race to create it
    return root, env


def _tune(workspace, *args, **kw):
    root, env = workspace
    return subprocess.Popen(
        [EMAILROUTER, "tune", str(root / "mails.csv"), *args],
        env=env,
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )


@pytest.mark.parametrize("which", ["postgres_engine", "mysql_engine"])
def test_two_workers_share_a_study(which, request, workspace):
    url = server_database(request.getfixturevalue(which), "emailrouter_optuna")
    study = f"shared-{uuid.uuid4().hex[:8]}"
    workers = [_tune(workspace, "--trials", "4", "--study", study, "--storage", url) for _ in range(2)]
    outs = [w.communicate(timeout=900)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outs
    s = optuna.load_study(study_name=study, storage=url)
    assert sum(t.state in FINISHED for t in s.trials) >= 4, [t.state for t in s.trials]
    assert not [t for t in s.trials if t.state == optuna.trial.TrialState.FAIL], [t.user_attrs for t in s.trials]
    assert len({t.user_attrs["worker"] for t in s.trials}) == 2, "both workers ran trials of the one study"
    assert "best: trial" in outs[0] and "best: trial" in outs[1]


def test_killed_worker_is_resumed_and_best_retrains(workspace):
    root, env = workspace
    url = f"sqlite:///{root / 'resume.db'}"
    worker = _tune(workspace, "--trials", "3", "--study", "resume", "--storage", url)
    deadline = time.monotonic() + 600
    while True:  # kill it (SIGKILL: no chance to clean up) once one trial is done and the next has started
        assert worker.poll() is None, worker.stdout.read()
        assert time.monotonic() < deadline, "no second trial started in time"
        try:
            trials = optuna.load_study(study_name="resume", storage=url).trials
        except KeyError:
            trials = []
        if sum(t.state in FINISHED for t in trials) >= 1 and any(
            t.state == optuna.trial.TrialState.RUNNING for t in trials
        ):
            break
        time.sleep(0.3)
    worker.kill()
    worker.wait()
    killed = [
        t.number
        for t in optuna.load_study(study_name="resume", storage=url).trials
        if t.state == optuna.trial.TrialState.RUNNING
    ]
    time.sleep(8)  # past the heartbeat's grace period (6 s at a 1 s heartbeat)
    again = _tune(workspace, "--trials", "3", "--study", "resume", "--storage", url)
    out = again.communicate(timeout=600)[0]
    assert again.returncode == 0, out
    s = optuna.load_study(study_name="resume", storage=url)
    assert sum(t.state in FINISHED for t in s.trials) == 3, [t.state for t in s.trials]
    assert [t.number for t in s.trials if t.state == optuna.trial.TrialState.FAIL] == killed
    retried = [t.system_attrs.get("failed_trial") for t in s.trials]  # where Optuna's retry callback notes the original
    assert killed[0] in retried, "the dead worker's trial was queued again"

    r = subprocess.run(
        [EMAILROUTER, "train", str(root / "mails.csv"), "--params", "best", "--study", "resume", "--storage", url],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"parameters of trial {s.best_trial.number} of study resume" in r.stdout and "as @challenger" in r.stdout
    assert "promoted to @champion" in r.stdout or "not promoted" in r.stdout


def test_bad_tuning_input_is_one_clear_line(workspace, tmp_path):
    root, env = workspace
    run = lambda *a: subprocess.run([EMAILROUTER, *a], env=env, cwd=root, capture_output=True, text=True, timeout=300)
    r = run("train", str(root / "mails.csv"), "--params", str(tmp_path / "nope.json"))
    assert r.returncode == 2 and "no parameter file" in r.stderr and "Traceback" not in r.stderr, r.stderr
    (tmp_path / "bad.json").write_text('{"learning_rat": 0.001}')
    r = run("train", str(root / "mails.csv"), "--params", str(tmp_path / "bad.json"))
    assert r.returncode == 2 and "unknown parameters ['learning_rat']" in r.stderr, r.stderr
    r = run(
        "tune",
        str(root / "mails.csv"),
        "--storage",
        "postgresql+psycopg://router:s3cret@127.0.0.1:1/none",
        "--trials",
        "1",
    )
    assert r.returncode == 2 and "cannot open the study storage" in r.stderr and "s3cret" not in r.stderr + r.stdout, (
        r.stderr
    )
    r = run(
        "train",
        str(root / "mails.csv"),
        "--params",
        "best",
        "--study",
        "never-run",
        "--storage",
        f"sqlite:///{tmp_path / 'x.db'}",
    )
    assert r.returncode == 2 and "no study 'never-run'" in r.stderr, r.stderr
