"""The labelling queue and the import of agents' labels on SQLite, PostgreSQL and MariaDB, and through the command
line: a sheet written, filled in as an agent would, imported; bad sheets refused with every problem named and nothing
stored."""

import json
from datetime import datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import server_database
from openpyxl import load_workbook

from emailrouter.labelling import import_feedback, label_queue, read_label_sheet, unlabelled
from emailrouter.predlog import log_engine, migrate, prediction_row, queue_set_id, read_log
from emailrouter.testing import run_cli

QUEUES = ["flytning", "mobil", "regning"]
TABLES = ("er_shadow", "er_feedback", "er_predictions", "er_queue_sets", "alembic_version")
TEXTS = [
    "Min regning på 499 kr er for høj, hvorfor?",
    "Jeg flytter til Aarhus den 1. marts og vil tage internettet med",
    "Mit mobilabonnement virker ikke i udlandet",
    "Kan I forklare gebyret på min faktura?",
]


def fill(url: str, n: int = 40) -> sa.Engine:
    "A log of `n` answers (scores falling from sure to unsure), ids `Mail-i` and `mail-i` both, every third shadowed."
    e = sa.create_engine(url)
    with e.begin() as c:
        for t in TABLES:
            c.execute(sa.text(f"drop table if exists {t}"))
    e.dispose()
    engine = log_engine(url)
    migrate(engine)
    qs, t0, rows = queue_set_id(QUEUES), datetime(2026, 3, 2, 8), []
    for i in range(n):
        p = 0.95 - 0.5 * i / n
        top = [{"queue": QUEUES[i % 3], "score": p}, {"queue": QUEUES[(i + 1) % 3], "score": 1 - p}]
        answer = {"queue": top[0]["queue"], "score": p, "route": top[0]["queue"], "top_k": top}
        rid = f"Mail-{i // 2}" if i % 2 else f"mail-{i // 2}"  # ids differing only in case are different answers
        text = f"{TEXTS[i % 4]} (kunde {i})"
        rows.append(
            prediction_row(rid, text, answer, "m", "1", 3.0, "da", queue_set=qs)
            | {"created_at": t0 + timedelta(minutes=i)}
        )
    with engine.begin() as c:
        c.execute(sa.text("insert into er_queue_sets (id, queues) values (:i, :q)"), {"i": qs, "q": json.dumps(QUEUES)})
        c.execute(sa.table("er_predictions", *[sa.column(k) for k in rows[0]]).insert(), rows)
        shadow = [
            {
                "request_id": r["request_id"],
                "created_at": r["created_at"],
                "model_name": "m",
                "model_version": "2",
                "queue": QUEUES[(j + 2) % 3],
                "score": 0.5,
                "latency_ms": 3.0,
            }
            for j, r in enumerate(rows)
            if j % 3 == 0
        ]
        c.execute(sa.table("er_shadow", *[sa.column(k) for k in shadow[0]]).insert(), shadow)
    return engine


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def log_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'log.db'}"
    return server_database(request.getfixturevalue(f"{request.param}_engine"), "emailrouter_labelling")


def test_queue_and_import_on_each_database(log_url):
    engine = fill(log_url)
    cand = unlabelled(engine)
    assert len(cand) == 40 and cand["shadow_queue"].notna().sum() == 14
    q = label_queue(engine, 6, "uncertainty", diversity=0)
    margin = lambda scores: sorted(abs(2 * x - 1) for x in scores)  # the two queues' scores sum to 1
    assert margin(q["score"]) == pytest.approx(margin(cand["score"])[:6], abs=0.002)  # the closest calls
    dis = label_queue(engine, 5, "disagreement")
    assert dis["reason"].str.contains("challenger").all()
    sheet = pd.DataFrame({"row": [2, 3], "request_id": ["Mail-3", "mail-3"], "true_queue": ["regning", "Mobil"]})
    assert import_feedback(engine, sheet) == {"stored": 2, "unchanged": 0, "blank": 0}
    assert import_feedback(engine, sheet) == {"stored": 0, "unchanged": 2, "blank": 0}
    log = read_log(engine).set_index("request_id")
    assert log.loc["Mail-3", "true_queue"] == "regning" and log.loc["mail-3", "true_queue"] == "mobil"
    assert not {"Mail-3", "mail-3"} & set(label_queue(engine, 100, "random")["request_id"])
    with pytest.raises(ValueError, match="no logged mail has request_id 'MAIL-3'"):
        import_feedback(engine, pd.DataFrame({"row": [2], "request_id": ["MAIL-3"], "true_queue": ["regning"]}))
    engine.dispose()


def test_cli_writes_a_sheet_and_imports_what_agents_wrote(tmp_path):
    url = f"sqlite:///{tmp_path / 'log.db'}"
    fill(url).dispose()
    env = {"EMAILROUTER_LOG_URL": url}
    r = run_cli("label-queue", "--budget", "5", "--out", tmp_path / "q.xlsx", env=env)
    assert r.returncode == 0, r.stderr
    assert "wrote 5 mails to label" in r.stdout and "emailrouter feedback-import" in r.stdout
    wb = load_workbook(tmp_path / "q.xlsx")
    ws = wb["label"]
    header = [c.value for c in ws[1]]
    ids = [ws.cell(i, header.index("request_id") + 1).value for i in range(2, 7)]
    col = header.index("true_queue") + 1
    ws.cell(2, col).value, ws.cell(3, col).value = "regning", "flytning"  # two labelled, three left blank
    wb.save(tmp_path / "q.xlsx")

    r = run_cli("feedback-import", tmp_path / "q.xlsx", env=env)
    assert r.returncode == 0, r.stderr
    assert "stored 2 labels from q.xlsx; 0 were stored already, 3 rows have no queue" in r.stdout
    r = run_cli("feedback-import", tmp_path / "q.xlsx", env=env)
    assert "stored 0 labels from q.xlsx; 2 were stored already" in r.stdout
    engine = log_engine(url)
    log = read_log(engine).set_index("request_id")
    assert log.loc[ids[0], "true_queue"] == "regning" and log.loc[ids[0], "feedback_source"] == "labelling"

    bad = read_label_sheet(tmp_path / "q.xlsx")
    bad.loc[2, "true_queue"], bad.loc[3, "request_id"] = "kantine", "nobody"
    bad.loc[3, "true_queue"] = "mobil"
    bad.drop(columns="row").to_csv(tmp_path / "bad.csv", sep=";", index=False)
    r = run_cli("feedback-import", tmp_path / "bad.csv", env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "2 problem(s) in the label sheet, nothing stored" in r.stderr
    assert "row 4: unknown queue 'kantine'" in r.stderr and "row 5: no logged mail has request_id 'nobody'" in r.stderr
    assert read_log(engine)["true_queue"].notna().sum() == 2  # nothing of the bad sheet stored
    engine.dispose()

    for args, why in [
        (("label-queue", "--out", tmp_path / "x.xlsx", "--strategy", "drift"), "--reference"),
        (("label-queue", "--out", tmp_path / "x.pdf"), ".xlsx or .csv"),
        (("label-queue", "--out", tmp_path / "x.csv", "--since", "yesterday"), "not a date: 'yesterday'"),
        (("feedback-import", tmp_path / "missing.xlsx"), "no label sheet at"),
        (("feedback-import", tmp_path / "q.xlsx", "--source", "a b"), "--source must be"),
    ]:
        r = run_cli(*args, env=env)
        assert r.returncode == 2 and why in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    r = run_cli("label-queue", "--out", tmp_path / "x.csv")
    assert r.returncode == 2 and "no prediction log at" in r.stderr and "serve some mail first" in r.stderr


def test_train_with_feedback_learns_a_new_queue_and_records_its_lineage(tmp_path):
    """Agents label logged mail, some of it with a queue opened after the model was trained (accepted through the
    new_queues setting); `train --with-feedback` learns that queue, tests on the newest labelled mail, records the
    lineage in MLflow and registers the model as @challenger without promoting it."""
    from mlflow import MlflowClient

    from emailrouter.core import load_settings
    from emailrouter.demo import make_demo_corpus
    from emailrouter.registry import CHALLENGER, configure_mlflow
    from emailrouter.testing import tiny_encoder
    from emailrouter.text import clean_email

    inbox = make_demo_corpus(500, seed=5, messy=False).sort_values("received_at", ignore_index=True)
    inbox.iloc[:300][["id", "received_at", "subject", "body", "queue"]].to_csv(tmp_path / "train.csv", index=False)
    url = f"sqlite:///{tmp_path / 'log.db'}"
    engine = log_engine(url)
    migrate(engine)
    queues = sorted(set(inbox["queue"]))
    qs = queue_set_id(queues)
    later = inbox.iloc[300:].reset_index(drop=True)
    ev = [f"Jeg har købt elbil nummer {i} og vil have en ladeboks monteret" for i in range(8)]
    texts = [clean_email(m.subject, m.body) for m in later.itertuples()] + ev
    t0 = datetime(2026, 2, 1)
    rows = [
        prediction_row(f"r{i}", t, {"queue": "andet", "score": 0.5, "route": "andet", "top_k": []}, "m", "1", 3.0)
        | {"created_at": t0 + timedelta(hours=i), "queue_set": qs}
        for i, t in enumerate(texts)
    ]
    with engine.begin() as c:
        c.execute(sa.text("insert into er_queue_sets (id, queues) values (:i, :q)"), {"i": qs, "q": json.dumps(queues)})
        c.execute(sa.table("er_predictions", *[sa.column(k) for k in rows[0]]).insert(), rows)
    engine.dispose()
    sheet = pd.DataFrame(
        {"request_id": [f"r{i}" for i in range(len(texts))], "true_queue": [*later["true_queue"], *["elbil"] * 8]}
    )
    sheet.to_csv(tmp_path / "labels.csv", index=False)
    env = {
        "EMAILROUTER_LOG_URL": url,
        "EMAILROUTER_OUTPUT_DIR": str(tmp_path / "runs"),
        "EMAILROUTER_BASE_MODEL": str(tiny_encoder(tmp_path / "encoder", "bert")),
        "EMAILROUTER_MIN_EXAMPLES_PER_LABEL": "5",
    }
    r = run_cli("feedback-import", tmp_path / "labels.csv", env=env)
    assert r.returncode == 2 and "unknown queue 'elbil'" in r.stderr, r.stderr  # not a queue yet
    r = run_cli("feedback-import", tmp_path / "labels.csv", env=env | {"EMAILROUTER_NEW_QUEUES": '["elbil"]'})
    assert r.returncode == 0 and f"stored {len(texts)} labels" in r.stdout, r.stdout + r.stderr

    args = ["--epochs", "1", "--max-steps", "2", "--batch-size", "8", "--max-length", "32"]
    r = run_cli("train", tmp_path / "train.csv", "--with-feedback", *args, env=env, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "with agents' labels: 208 logged mails answered 2026-02-01 00:00:00" in r.stdout, r.stdout
    assert "new queues: elbil" in r.stdout and "parent model version none" in r.stdout, r.stdout
    assert "promote --on-feedback" in r.stdout and "promoted to @champion" not in r.stdout, r.stdout
    s = load_settings(output_dir=tmp_path / "runs")
    configure_mlflow(s)
    client = MlflowClient()
    mv = client.get_model_version_by_alias(s.model_name, CHALLENGER)
    params = client.get_run(mv.run_id).data.params
    assert params["feedback_rows"] == "208" and "elbil" in params["feedback_new_queues"].split(","), params
    assert params["feedback_last"] == f"{t0 + timedelta(hours=len(texts) - 1):%Y-%m-%d %H:%M:%S}"
    request = json.loads(next((tmp_path / "runs" / "train").glob("*/request.json")).read_text())
    assert request["feedback"]["feedback_upto_id"] == len(texts) and url not in json.dumps(request)
    model_dir = next((tmp_path / "runs" / "train").glob("*/model"))
    assert "elbil" in json.loads((model_dir / "config.json").read_text())["label2id"]

    r = run_cli("train", tmp_path / "train.csv", "--since", "2026-02-01", env=env)
    assert r.returncode == 2 and "--since and --log-url choose the feedback of --with-feedback" in r.stderr
    r = run_cli("train", tmp_path / "train.csv", "--with-feedback", "--since", "2027-01-01", *args, env=env)
    assert r.returncode == 2 and "holds no labelled mail with text answered since 2027-01-01" in r.stderr, r.stderr


def test_rows_logged_before_queue_sets_offer_every_queue_and_the_opened_ones(tmp_path):
    "A log upgraded from before queue sets were kept: its old rows offer the log's queues, plus the opened ones."
    engine = fill(f"sqlite:///{tmp_path / 'log.db'}", n=6)
    with engine.begin() as c:
        c.execute(sa.text("update er_predictions set queue_set = null where request_id in ('mail-0', 'Mail-0')"))
    q = label_queue(engine, 10, "random", new_queues=["elbil"]).set_index("request_id")
    assert q.loc["mail-0", "queues"] == q.loc["mail-1", "queues"] == ", ".join([*QUEUES, "elbil"])
    assert import_feedback(engine, pd.DataFrame({"row": [2], "request_id": ["mail-0"], "true_queue": ["mobil"]}))
    engine.dispose()
