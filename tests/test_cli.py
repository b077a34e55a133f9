"""The console script as a user runs it: real processes, exit codes, no tracebacks."""

import os
import subprocess

import pandas as pd
import pytest

from emailrouter.testing import EMAILROUTER_CLI, run_cli

run = run_cli


def test_demo_data_then_data(tmp_path):
    r = run("demo-data", "--n", "800", "--out", str(tmp_path / "demo.parquet"))
    assert r.returncode == 0, r.stderr
    assert "wrote 800 mails in 12 queues" in r.stdout
    df = pd.read_parquet(tmp_path / "demo.parquet")
    assert len(df) == 800 and {"subject", "body", "queue", "received_at", "message", "pii"} <= set(df.columns)
    r = run("data", str(tmp_path / "demo.parquet"), "--out", str(tmp_path / "splits"))
    assert r.returncode == 0, r.stderr
    assert "time split" in r.stdout and "exact duplicate" in r.stdout and "total" in r.stdout
    test = pd.read_parquet(tmp_path / "splits" / "test.parquet")
    assert not test.text.str.contains(r"\w@\w").any()


def test_bad_input_gives_one_line_not_a_traceback(tmp_path):
    r = run("data", str(tmp_path / "missing.csv"))
    assert r.returncode == 2 and "no such file" in r.stderr and "Traceback" not in r.stderr
    r = run("data", "demo:100", env={"EMAILROUTER_SPLIT": "sideways"})
    assert r.returncode == 2 and "EMAILROUTER_SPLIT" in r.stderr and "Traceback" not in r.stderr
    r = run("demo-data", "--out", str(tmp_path / "x.xlsx"), "--n", "10")
    assert r.returncode == 2 and "use .parquet, .csv or .jsonl" in r.stderr


def test_sql_password_never_printed(tmp_path):
    r = run("data", "mysql+pymysql://root:top-secret-pw@127.0.0.1:1/test", "--query", "mails")
    assert r.returncode == 2 and "top-secret-pw" not in r.stderr + r.stdout and "root:***@" in r.stderr


def test_unknown_setting_warns_with_suggestion(tmp_path):
    r = run("demo-data", "--n", "20", "--out", str(tmp_path / "d.csv"), env={"EMAILROUTER_MAX_LENGHT": "64"})
    assert r.returncode == 0 and "EMAILROUTER_MAX_LENGHT" in r.stderr and "EMAILROUTER_MAX_LENGTH" in r.stderr


def test_text_that_is_not_valid_unicode_is_reported_not_a_crash(tmp_path):
    "A JSON export can carry lone surrogates (\\ud800) in ids and texts: those rows are dropped with a reason."
    import json

    rows = [
        {
            "id": f"m{i}" + ("\ud800" if i == 0 else ""),
            "body": "hej \ud800" if i < 3 else f"Min regning nr {i} er for høj",
            "queue": ["regning", "tv"][i % 2],
        }
        for i in range(40)
    ]
    (tmp_path / "odd.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    r = run("data", str(tmp_path / "odd.jsonl"), "--out", str(tmp_path / "splits"))
    assert r.returncode == 0, r.stderr
    assert "non-UTF-8 bytes               3" in r.stdout and "Traceback" not in r.stderr
    kept = pd.concat(pd.read_parquet(tmp_path / "splits" / f"{k}.parquet") for k in ("train", "validation", "test"))
    assert len(kept) == 37 and not kept.text.str.contains("\ufffd").any()


def test_a_file_name_that_is_not_valid_unicode(tmp_path):
    "Non-UTF-8 bytes in a path arrive as surrogates (PEP 383); the error names the file without crashing."
    r = subprocess.run(
        [EMAILROUTER_CLI, "data", str(tmp_path).encode() + b"/caf\xe9.csv"], capture_output=True, timeout=300
    )
    assert r.returncode == 2 and b"no such file" in r.stderr and b"Traceback" not in r.stderr


def test_predict_analyse_and_label_issues(tmp_path, tiny_model):
    "Score a file without labels and one with them; analyse a model folder; list doubtful labels."
    demo = tmp_path / "demo.csv"
    assert run("demo-data", "--n", "400", "--out", str(demo)).returncode == 0
    unlabelled = tmp_path / "new.csv"
    pd.read_csv(demo).drop(columns=["queue", "true_queue"]).to_csv(unlabelled, index=False)
    env = {"EMAILROUTER_OUTPUT_DIR": str(tmp_path / "runs"), "EMAILROUTER_MIN_EXAMPLES_PER_LABEL": "5"}
    r = run(
        "predict", str(unlabelled), "--model", str(tiny_model.model_dir), "--out", str(tmp_path / "p.parquet"), env=env
    )
    assert r.returncode == 0, r.stderr
    p = pd.read_parquet(tmp_path / "p.parquet")
    assert len(p) == 400 and {"id", "queue", "score", "route", "top_k"} <= set(p.columns) and "label" not in p
    assert p.loc[p.queue != "", "queue"].isin(tiny_model.data.unique_tags).all()
    r = run("predict", str(demo), "--model", str(tiny_model.model_dir), "--out", str(tmp_path / "q.csv"), env=env)
    assert r.returncode == 0 and "accuracy:" in r.stdout and "coverage:" in r.stdout, r.stdout + r.stderr
    r = run(
        "predict",
        str(tmp_path / "missing.csv"),
        "--model",
        str(tiny_model.model_dir),
        "--out",
        str(tmp_path / "x.csv"),
        env=env,
    )
    assert r.returncode == 2 and "no such file" in r.stderr and "Traceback" not in r.stderr
    r = run("analyse", "demo:400", "--model", str(tiny_model.model_dir), "--out", str(tmp_path / "a.html"), env=env)
    assert r.returncode == 0 and "accuracy" in r.stdout and (tmp_path / "a.html").stat().st_size > 10_000, r.stderr
    r = run("label-issues", str(demo), "--out", str(tmp_path / "issues.csv"), env=env)
    assert r.returncode == 0, r.stderr
    issues = pd.read_csv(tmp_path / "issues.csv")
    assert len(issues) > 0 and {"id", "queue", "suggested", "p_recorded", "label_quality"} <= set(issues.columns)
    r = run("label-issues", str(demo), "--n", "7", "--out", str(tmp_path / "top.csv"), env=env)
    assert r.returncode == 0 and "the 7 most doubtful" in r.stdout and len(pd.read_csv(tmp_path / "top.csv")) == 7, (
        r.stderr
    )
    r = run("label-issues", str(demo), "--n", "0", "--out", str(tmp_path / "none.csv"), env=env)
    assert r.returncode == 2 and "--n must be at least 1" in r.stderr and not (tmp_path / "none.csv").exists()


def test_sigterm_marks_the_run_and_resume_finishes_it(tmp_path):
    """A training stopped by SIGTERM leaves an MLflow run marked KILLED, with its reason and the curves so far;
    --resume finishes that run."""
    import signal
    import time

    from mlflow import MlflowClient

    from emailrouter.core import load_settings
    from emailrouter.registry import CHALLENGER, configure_mlflow
    from emailrouter.testing import tiny_encoder
    from emailrouter.tracking import interrupted_run

    enc = tiny_encoder(tmp_path / "encoder", "convbert")
    env = {
        **os.environ,
        "EMAILROUTER_OUTPUT_DIR": str(tmp_path / "runs"),
        "EMAILROUTER_BASE_MODEL": str(enc),
        "EMAILROUTER_PROGRESS": "false",
        "EMAILROUTER_MIN_EXAMPLES_PER_LABEL": "5",
    }
    p = subprocess.Popen(
        [
            EMAILROUTER_CLI,
            "train",
            "demo:400",
            "--epochs",
            "12",
            "--patience",
            "0",
            "--batch-size",
            "8",
            "--max-length",
            "32",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not list(
        (tmp_path / "runs" / "train").glob("*/checkpoints/checkpoint-*/trainer_state.json")
    ):  # once a checkpoint is complete
        assert p.poll() is None, p.stdout.read()
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    out = p.communicate(timeout=120)[0]
    assert p.returncode == 130 and "emailrouter train --resume" in out and "Traceback" not in out, out
    s = load_settings(output_dir=tmp_path / "runs")
    configure_mlflow(s)
    client, run = MlflowClient(), interrupted_run(s)
    assert run.info.status == "KILLED" and run.data.tags["failure_reason"] == "interrupted (SIGTERM)", run.data.tags
    assert len(client.get_metric_history(run.info.run_id, "eval_macro_f1")) >= 1, "curves were streamed before the stop"

    r = subprocess.run(
        [EMAILROUTER_CLI, "train", "--resume"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"resuming MLflow run {run.info.run_id}" in r.stdout and "resuming from checkpoint-" in r.stderr, (
        r.stdout + r.stderr
    )
    done = client.get_run(run.info.run_id)
    assert done.info.status == "FINISHED" and "test_accuracy" in done.data.metrics
    assert len({m.step for m in client.get_metric_history(run.info.run_id, "eval_macro_f1")}) == 12, (
        "one evaluation per epoch, all 12"
    )
    assert client.get_model_version_by_alias(s.model_name, CHALLENGER).run_id == run.info.run_id
    run_cli = subprocess.run(
        [EMAILROUTER_CLI, "train", "--resume"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert run_cli.returncode == 2 and "no interrupted training run" in run_cli.stderr, run_cli.stderr


def test_predict_refuses_a_source_without_mails(tmp_path, tiny_model):
    "A header without rows, or rows without any text: one line naming the problem, exit code 2, nothing written."
    (tmp_path / "header.csv").write_text("id,subject,body,queue\n")
    model, out = ["--model", str(tiny_model.model_dir)], ["--out", str(tmp_path / "p.csv")]
    r = run("predict", str(tmp_path / "header.csv"), *model, *out)
    assert r.returncode == 2, r.stdout + r.stderr
    header = tmp_path / "header.csv"
    assert r.stderr.strip().splitlines() == [f"emailrouter: error: {header} holds no mails (no rows): nothing to route"]
    assert r.stdout == "" and not (tmp_path / "p.csv").exists()
    (tmp_path / "blank.csv").write_text("id,body,queue\nm1,,regning\nm2,   ,tv\n")
    r = run("predict", str(tmp_path / "blank.csv"), *model, *out)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        f"emailrouter: error: none of the 2 mails in {tmp_path / 'blank.csv'} has text once cleaned: nothing to route"
    )
    assert not (tmp_path / "p.csv").exists()


def _printed(stdout: str) -> dict[str, float]:
    return {k.strip(): float(v) for k, v in (line.split(":") for line in stdout.splitlines() if line.startswith("  "))}


def test_predict_names_queues_the_model_lacks_and_scores_over_all_queues(tmp_path, tiny_model):
    """Recorded queues the model does not have are named with their counts and count as wrong; accuracy, macro- and
    weighted F1 are over the same mails (those with a label) and the same queues (the model's and the file's)."""
    from sklearn.metrics import f1_score

    mails = tiny_model.data.frame("test").head(30)[["text"]].rename(columns={"text": "body"})
    mails.insert(0, "id", [f"m{i}" for i in range(len(mails))])
    mails.to_csv(tmp_path / "new.csv", index=False)
    model = ["--model", str(tiny_model.model_dir)]
    assert run("predict", str(tmp_path / "new.csv"), *model, "--out", str(tmp_path / "first.csv")).returncode == 0
    said = pd.read_csv(tmp_path / "first.csv")["queue"].tolist()  # the model's answers, to label half of them right
    other = [q for q in tiny_model.data.unique_tags if q != said[15]][0]
    mails["queue"] = said[:15] + [other] * 5 + ["ny_kø"] * 4 + ["tastefejl"] * 2 + [None] * 4
    mails.to_csv(tmp_path / "labelled.csv", index=False)
    r = run("predict", str(tmp_path / "labelled.csv"), *model, "--out", str(tmp_path / "p.csv"))
    assert r.returncode == 0, r.stderr
    warning = [line for line in r.stderr.splitlines() if "queues the model does not have" in line]
    assert len(warning) == 1 and "'ny_kø' (4)" in warning[0] and "'tastefejl' (2)" in warning[0], r.stderr
    assert "6 labelled mails are in 2 queues" in warning[0] and "nan" not in warning[0]
    out = pd.read_csv(tmp_path / "p.csv")
    labelled = out[out["label"].notna()]
    assert len(labelled) == 26
    queues = sorted(set(tiny_model.data.unique_tags) | set(labelled["label"]))
    m = _printed(r.stdout)
    assert f"scored against the labels of 26 mails over {len(queues)} queues (4 without a label" in r.stdout
    assert m["accuracy"] == pytest.approx((labelled["queue"] == labelled["label"]).mean(), abs=1e-4)
    assert m["accuracy"] == pytest.approx(15 / 26, abs=1e-4)
    for avg in ("macro", "weighted"):
        f1 = f1_score(labelled["label"], labelled["queue"], labels=queues, average=avg, zero_division=0)
        assert m[f"{avg}_f1"] == pytest.approx(f1, abs=1e-4), (avg, m)
    assert 0 < m["weighted_f1"] < 1
