"""Production scoring from the prediction log: hand-computed scores on SQLite, PostgreSQL and MariaDB, and the loop a
new user runs: serve -> emailrouter simulate -> feedback -> emailrouter monitor (and its Prometheus file)."""

import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import server_database

from emailrouter.monitor import estimate_accuracy, period_scores, queue_scores
from emailrouter.predlog import FeedbackRow, PredictionLog, log_engine, prediction_row, read_log
from emailrouter.testing import serve_process

T0 = datetime(2026, 3, 2, 9)
# (id, day, predicted, score, routed automatically, agents' queue or None)
MAILS = [
    ("a", 0, "regning", 0.9, True, "regning"),
    ("b", 0, "mobil", 0.5, False, "regning"),
    ("c", 0, "regning", 0.7, True, None),
    ("d", 1, "mobil", 0.8, True, "mobil"),
    ("e", 1, "mobil", 0.6, False, None),
    ("f", 1, "regning", 0.9, True, "mobil"),
]


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def log_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'log.db'}"
    url = server_database(request.getfixturevalue(f"{request.param}_engine"), "emailrouter_monitor")
    e = sa.create_engine(url)
    with e.begin() as c:
        for t in ("er_shadow", "er_feedback", "er_predictions", "er_queue_sets", "alembic_version"):
            c.execute(sa.text(f"drop table if exists {t}"))
    e.dispose()
    return url


def test_scores_from_the_database_match_hand_computed(log_url):
    plog = PredictionLog(log_url, flush_seconds=0.05).start()
    rows = []
    for rid, day, q, score, auto, _ in MAILS:
        ans = {
            "queue": q,
            "score": score,
            "route": q if auto else "manuel_behandling",
            "top_k": [{"queue": q, "score": score}],
        }
        rows.append(
            {
                **prediction_row(rid, f"mail {rid} æøå", ans, "emailrouter", str(day + 1), 5.0),
                "created_at": T0 + timedelta(days=day),
            }
        )
    plog.put(rows)
    assert plog.flush(30)
    plog.stop()
    engine = log_engine(log_url)
    with engine.begin() as c:
        for rid, day, *_, true in MAILS:
            if true:
                c.execute(
                    FeedbackRow.__table__.insert(),
                    {
                        "request_id": rid,
                        "true_queue": true,
                        "source": "agent",
                        "created_at": T0 + timedelta(days=day, hours=2),
                    },
                )
    df = read_log(engine)
    engine.dispose()
    ps = period_scores(df)
    # day 1: a right (auto), b wrong (review) -> accuracy 1/2, auto 1/1, review 1/3, coverage 2/3, estimate
    # (0.9+0.5+0.7)/3
    # day 2: d right (auto), f wrong (auto) -> accuracy 1/2, auto 1/2, review 1/3, coverage 2/3
    assert ps["mails"].tolist() == [3, 3] and ps["with_feedback"].tolist() == [2, 2]
    assert ps["accuracy"].tolist() == pytest.approx([0.5, 0.5]) and ps["auto_accuracy"].tolist() == pytest.approx(
        [1.0, 0.5]
    )
    assert ps["review_share"].tolist() == pytest.approx([1 / 3, 1 / 3]) and ps["coverage"].tolist() == pytest.approx(
        [2 / 3, 2 / 3]
    )
    assert ps["estimated_accuracy"].iloc[0] == pytest.approx(0.7) and ps["feedback_delay_h"].tolist() == pytest.approx(
        [2.0, 2.0]
    )
    qs = queue_scores(df)  # a R, b R->mobil, d M, f M->regning: regning P 1/2 R 1/2, mobil P 1/2 R 1/2
    assert qs.loc["regning", ["precision", "recall"]].tolist() == pytest.approx([0.5, 0.5])
    assert qs.loc["mobil", ["precision", "recall"]].tolist() == pytest.approx([0.5, 0.5])
    by_version = period_scores(df, by="model_version")
    assert sorted(by_version.index.get_level_values("model_version")) == ["1", "2"]
    est = estimate_accuracy(df)
    assert est["realised"] == pytest.approx(0.5) and est["estimate"] == pytest.approx(sum(m[3] for m in MAILS) / 6)


EXE = [str(Path(sys.executable).with_name("emailrouter"))]


def _cli(*args, env=None):
    return subprocess.run([*EXE, *args], capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


def test_serve_simulate_feedback_monitor(tiny_model, tmp_path):
    "What the README tells a new user to run, on the embedded defaults: the answers and the feedback end up scored."
    log_url = f"sqlite:///{tmp_path / 'predictions.db'}"
    env = {
        "EMAILROUTER_MODEL_URI": str(tiny_model.model_dir),
        "EMAILROUTER_LOG_URL": log_url,
        "EMAILROUTER_LOG_FLUSH_SECONDS": "0.1",
        "EMAILROUTER_API_KEY": "k-123",
        "EMAILROUTER_PROGRESS": "false",
    }
    with serve_process([sys.executable, "-m", "uvicorn", "emailrouter.serve:app", "--port", "{port}"], env=env) as url:
        sim = _cli(
            "simulate",
            "--url",
            url,
            "--n",
            "80",
            "--rate",
            "100",
            "--feedback",
            "0.5",
            "--feedback-delay",
            "0.5",
            env=env,
        )
        assert sim.returncode == 0, sim.stdout + sim.stderr
        assert ", 0 errors" in sim.stdout and "sent 80 mails" in sim.stdout
        no_key = _cli(
            "simulate",
            "--url",
            url,
            "--n",
            "3",
            "--rate",
            "100",
            env={k: v for k, v in env.items() if k != "EMAILROUTER_API_KEY"},
        )
        assert (
            no_key.returncode == 1 and "3 errors" in no_key.stdout and "HTTP 401" in no_key.stdout
        )  # the key is required
        # the second period: agents' labels naming the new queue are refused until EMAILROUTER_NEW_QUEUES lists it
        drift = _cli("simulate", "--drift", "--url", url, "--n", "40", "--rate", "100", "--feedback", "1", env=env)
        assert drift.returncode == 0 and "sent 40 mails" in drift.stdout, drift.stdout + drift.stderr
        assert "EMAILROUTER_NEW_QUEUES" in drift.stderr, drift.stderr
    df = read_log(log_engine(log_url))
    n_fb = int(df["true_queue"].notna().sum())
    count = lambda out, before, after: int(out.split(after)[0].rsplit(before, 1)[1].split()[0])
    routed, routed2 = count(sim.stdout, " ", " routed"), count(drift.stdout, " ", " routed")
    fb2, refused2 = count(drift.stdout, "feedback posted for ", " ("), count(drift.stdout, "(", " refused)")
    assert routed2 == 40 and fb2 + refused2 == 40 and refused2 >= 1, drift.stdout  # the new queue's mails
    assert (
        routed >= 75
        and len(df) == routed + routed2
        and 20 + fb2 <= n_fb <= 60 + fb2
        and set(df.loc[df.true_queue.notna(), "true_queue"]) <= set(tiny_model.data.unique_tags)
    )
    prom = tmp_path / "textfile" / "emailrouter.prom"
    mon = _cli("monitor", "--freq", "h", "--current-hours", "0.01", "--prom-file", str(prom), env=env)
    assert mon.returncode == 0, mon.stdout + mon.stderr
    assert f"{len(df)} predictions, {n_fb} with feedback" in mon.stdout and "estimated accuracy" in mon.stdout
    text = prom.read_text()
    assert "emailrouter_production_accuracy" in text and "emailrouter_estimated_accuracy" in text
    empty = _cli("monitor", "--log-url", f"sqlite:///{tmp_path / 'nothing.db'}")
    assert empty.returncode == 2 and "error:" in empty.stderr and "Traceback" not in empty.stderr


def test_shadow_challenger_scores_traffic_and_feedback_promotes_it(tiny_model, tmp_path):
    "A @challenger is scored beside the @champion off the request path; feedback that favours it moves @champion."
    import json

    from fastapi.testclient import TestClient
    from mlflow import MlflowClient

    from emailrouter.core import load_settings
    from emailrouter.model import ROUTER_FILE
    from emailrouter.monitor import promote_on_feedback
    from emailrouter.predlog import read_shadow
    from emailrouter.serve import create_app
    from emailrouter.testing import tiny_encoder
    from emailrouter.tracking import log_training, promote

    other = tiny_encoder(tmp_path / "other", "convbert", labels=tiny_model.data.unique_tags, seed=7)
    (other / ROUTER_FILE).write_text(json.dumps({"max_length": 64, "truncation": "head"}))
    s = load_settings(
        output_dir=tmp_path / "runs",
        model_name="shadow-test",
        log_url=f"sqlite:///{tmp_path / 'log.db'}",
        log_flush_seconds=0.05,
        confidence_threshold=0.0,
    )
    log_training(tiny_model.model_dir, tiny_model.data, {}, {"test_macro_f1": 0.5}, settings=s)
    promote(s)  # v1: champion
    log_training(other, tiny_model.data, {}, {"test_macro_f1": 0.4}, settings=s)  # v2: challenger only
    texts = tiny_model.data.frame("test")["text"].tolist()
    assert len(texts) >= 30
    with TestClient(create_app(s)) as c:
        assert c.app.state.shadow.model.version == "2"
        ids = [c.post("/predict", json={"body": t}).json()["request_id"] for t in texts]
        engine = log_engine(s.log_url)
        for _ in range(200):  # the writer creates the log's tables with its first batch: until then there are none
            done = c.app.state.recorder.log.flush(1)
            if done and sa.inspect(engine).has_table("er_shadow") and len(read_shadow(engine)) == len(ids):
                break
            time.sleep(0.05)
        shadow = read_shadow(log_engine(s.log_url)).set_index("request_id")
        assert sorted(shadow.index) == sorted(ids) and set(shadow["model_version"]) == {"2"}
        for _ in range(100):  # counted just after the rows are handed over
            if f'emailrouter_shadow_total{{outcome="scored"}} {len(ids)}.0' in c.get("/metrics").text:
                break
            time.sleep(0.05)
        else:
            raise AssertionError([l for l in c.get("/metrics").text.splitlines() if "shadow_total" in l])
        few = promote_on_feedback(s, min_feedback=10)
        assert not few["promoted"] and "only 0 shadowed mails have feedback" in few["reason"]
        for i in ids:  # the agents side with the challenger every time
            assert c.post("/feedback", json={"request_id": i, "true_queue": shadow.loc[i, "queue"]}).status_code == 200
        # a model retrained from the log registers a new @challenger: a reload makes it the shadow, no restart
        log_training(other, tiny_model.data, {}, {"test_macro_f1": 0.3}, settings=s)  # v3
        r = c.post("/admin/reload").json()
        assert (r["version"], r["shadow_version"]) == ("1", "3") and c.app.state.shadow.model.version == "3", r
        set_alias = MlflowClient().set_registered_model_alias
        set_alias("shadow-test", "challenger", "2")  # back to v2, the challenger the feedback below judges
        assert c.post("/admin/reload").json()["shadow_version"] == "2"
    strict = promote_on_feedback(s, margin=1.0, min_feedback=30)  # no gain can clear 100 points
    assert not strict["promoted"] and "does not clear the margin" in strict["reason"]
    d = promote_on_feedback(s, margin=0.0, min_feedback=30)
    row = d["table"].loc["2"]
    assert row["challenger_accuracy"] == 1.0 and row["champion_accuracy"] == row["agreement"] < 1.0
    assert d["promoted"], d["reason"]
    assert str(MlflowClient().get_model_version_by_alias("shadow-test", "champion").version) == "2"


def test_scores_computed_by_the_database_equal_the_in_memory_ones(log_url):
    """The SQL path (period scores by day, hour, week and version, per-queue table, confusion, estimate, latency
    quantiles, drift windows) gives the in-memory path's numbers on each database, whole and filtered."""
    import numpy as np
    import pandas as pd

    from emailrouter.log_queries import (
        LogFilter,
        P,
        confusion_sql,
        drift_windows,
        estimate_sql,
        log_counts,
        period_scores_sql,
        prune_text,
        quantiles,
        queue_scores_sql,
    )
    from emailrouter.monitor import feedback_confusion, windows
    from emailrouter.testing import store_log, synthetic_log

    log = synthetic_log(1500, seed=3)
    log.loc[log.index % 3 == 0, "model_version"] = "2"
    log["feedback_at"] += pd.to_timedelta(np.random.default_rng(3).integers(0, 10**6, len(log)), unit="s")
    log["created_at"] = log["created_at"].dt.floor("s")  # MariaDB's DATETIME keeps whole seconds
    log["feedback_at"] = log["feedback_at"].dt.floor("s")
    engine = log_engine(log_url)
    store_log(engine, log)
    mem = read_log(engine, with_text=True)
    # MariaDB's FLOAT column is single precision and its text protocol sends six digits: the database's own sums
    # of the stored values differ from the rounded ones in the sixth digit
    tol = dict(check_exact=False, rtol=2e-5 if engine.dialect.name in ("mysql", "mariadb") else 2e-6)
    with engine.connect() as c:
        for freq, by in (("D", None), ("h", None), ("W", "model_version")):
            want = period_scores(mem, freq, by=by)
            got = period_scores_sql(c, LogFilter(), freq, by)[want.columns]
            assert list(got.index) == list(want.index)
            pd.testing.assert_frame_equal(got.astype(float), want.astype(float), **tol)
        for flt in (LogFilter(), LogFilter(start="2026-03-03", queues=("mobil", "regning")), LogFilter(version="2")):
            m = flt.apply(mem)
            counts = log_counts(c, flt, "D")
            pd.testing.assert_frame_equal(queue_scores_sql(counts).astype(float), queue_scores(m).astype(float), **tol)
            pd.testing.assert_frame_equal(confusion_sql(counts), feedback_confusion(m))
            got_est, want_est = estimate_sql(c, flt, counts), estimate_accuracy(m)
            assert got_est == pytest.approx(want_est, rel=1e-4, nan_ok=True)
            lat = quantiles(c, P.c.latency_ms, flt, (0.5, 0.95), "h")
            g = m.set_index("created_at").groupby(pd.Grouper(freq="h"))["latency_ms"]
            want_lat = pd.concat([g.quantile(0.5), g.quantile(0.95)], axis=1).dropna()
            assert list(lat.index) == list(want_lat.index)
            np.testing.assert_allclose(lat.to_numpy(), want_lat.to_numpy(), rtol=tol["rtol"])
            ref, cur = windows(m)
            s_ref, s_cur = drift_windows(c, flt, n=200)
            assert len(s_ref) == min(200, len(ref)) and set(s_ref["request_id"]) <= set(ref["request_id"])
            assert len(s_cur) == min(200, len(cur)) and set(s_cur["request_id"]) <= set(cur["request_id"])
    pruned = prune_text(engine, keep_days=1, now=datetime(2026, 3, 4, 12), batch=400)
    after = read_log(engine, with_text=True)
    old = after["created_at"] < datetime(2026, 3, 3, 12)
    assert pruned == old.sum() > 0 and after.loc[old, "text"].isna().all() and after.loc[~old, "text"].notna().all()
    engine.dispose()


def test_monitor_prune_forgets_old_text_and_says_what_it_needs(tmp_path):
    from emailrouter.testing import store_log, synthetic_log

    url = f"sqlite:///{tmp_path / 'log.db'}"
    engine = log_engine(url)
    now = datetime.now().replace(microsecond=0)
    log = synthetic_log(200, start=now - timedelta(days=3))
    store_log(engine, log)
    no_setting = _cli("monitor", "--prune", "--log-url", url)
    assert no_setting.returncode == 2 and "EMAILROUTER_LOG_TEXT_DAYS" in no_setting.stderr, no_setting.stderr
    done = _cli("monitor", "--prune", "--log-url", url, env={"EMAILROUTER_LOG_TEXT_DAYS": "2"})
    assert done.returncode == 0, done.stderr
    df = read_log(engine, with_text=True)
    old = df["created_at"] < now - timedelta(days=2, minutes=5)
    assert old.any() and df.loc[old, "text"].isna().all() and df["text"].notna().any()
    assert f"forgot the text of {int(df['text'].isna().sum())} answers" in done.stdout
    scores = _cli("monitor", "--log-url", url)  # the scores do not need the text
    assert scores.returncode == 0 and "200 predictions" in scores.stdout, scores.stderr
    engine.dispose()
