"""The prediction log on SQLite, PostgreSQL and MariaDB: schema, writes, feedback and reading; a database that goes away
mid-traffic, behind the writer and behind a running server; a server killed with rows still waiting."""

import os
import signal
import subprocess
import sys
import time
from datetime import datetime

import httpx
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from conftest import server_database

from emailrouter.predlog import (
    Base,
    FeedbackRow,
    PredictionLog,
    PredictionRow,
    log_engine,
    migrate,
    prediction_row,
    read_log,
    record_feedback,
)
from emailrouter.testing import TcpProxy, free_port

ANSWER = {"queue": "regning", "score": 0.8, "route": "regning", "top_k": [{"queue": "regning", "score": 0.8}]}
TABLES = ("er_shadow", "er_feedback", "er_predictions", "er_queue_sets", "alembic_version")


def rows(prefix, n, text="Min regning på 499 kr er for høj, [NAVN] æøå 🙂"):
    return [prediction_row(f"{prefix}-{i}", text, ANSWER, "emailrouter", "1", 3.0) for i in range(n)]


def fresh(url):
    "Drop the log's tables at `url`, so that each test starts from an empty database."
    e = sa.create_engine(url)
    with e.begin() as c:
        for t in TABLES:
            c.execute(sa.text(f"drop table if exists {t}"))
    e.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def log_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'log.db'}"
    return fresh(server_database(request.getfixturevalue(f"{request.param}_engine"), "emailrouter_log"))


def count(url):
    e = sa.create_engine(url)
    try:
        with e.connect() as c:
            return c.execute(sa.text("select count(*) from er_predictions")).scalar()
    finally:
        e.dispose()


def test_schema_is_the_models(log_url):
    engine = log_engine(log_url)
    assert migrate(engine) == "0005" and migrate(engine) == "0005"
    with engine.connect() as c:
        assert compare_metadata(MigrationContext.configure(c), Base.metadata) == []
    engine.dispose()


def test_each_answer_carries_its_latest_correction(log_url):
    """The database's triggers keep every answer's latest correction on its row: feedback after the answer, several
    corrections (the latest wins), feedback stored before its answer reached the log, ids differing only in case."""
    engine = log_engine(log_url)
    migrate(engine)
    P, F = PredictionRow.__table__, FeedbackRow.__table__
    now = datetime(2026, 3, 2)
    row = dict(created_at=now, queue="a", score=0.5, route="a", top_k="[]", latency_ms=1.0, n_chars=1, text_sha256="")
    fb = lambda rid, q: {"request_id": rid, "true_queue": q, "source": "agent", "created_at": now}
    with engine.begin() as c:
        c.execute(P.insert(), [{**row, "request_id": r} for r in ("one", "ONE", "none")])
        c.execute(F.insert(), [fb("one", "b"), fb("one", "c"), fb("early", "d"), fb("early", "e")])
        c.execute(P.insert(), {**row, "request_id": "early"})
        c.execute(F.insert(), fb("ONE", "f"))
    with engine.connect() as c:
        got = {r.request_id: (r.feedback_queue, r.feedback_id) for r in c.execute(sa.select(P))}
        latest = dict(c.execute(sa.select(F.c.request_id, sa.func.max(F.c.id)).group_by(F.c.request_id)).all())
    engine.dispose()
    assert {k: q for k, (q, _) in got.items()} == {"one": "c", "ONE": "f", "none": None, "early": "e"}
    assert {k: i for k, (_, i) in got.items() if i is not None} == latest


def test_write_feedback_and_read(log_url):
    plog = PredictionLog(log_url, batch_size=64, flush_seconds=0.05).start()
    plog.put(rows("a", 300))
    plog.put(rows("a", 4) + rows("b", 2))  # four ids already logged: refused one by one, the rest kept
    assert plog.flush(30)
    st = plog.stop()
    assert (st["put"], st["written"], st["rejected"], st["dropped"], st["lost"]) == (306, 302, 4, 0, 0)
    engine = log_engine(log_url)
    queues = ["regning", "mobil", "opsigelse"]
    assert record_feedback(engine, "a-7", "mobil", "agent", queues)["corrections"] == 1
    assert record_feedback(engine, "a-7", "opsigelse", "supervisor", queues)["corrections"] == 2
    with pytest.raises(ValueError, match="no prediction with request_id 'x'"):
        record_feedback(engine, "x", "mobil", "agent", queues)
    with pytest.raises(ValueError, match="unknown queue 'flyt'"):
        record_feedback(engine, "a-7", "flyt", "agent", queues)
    df = read_log(engine, with_text=True).set_index("request_id")
    assert len(df) == 302 and df["true_queue"].notna().sum() == 1
    assert (df.loc["a-7", "true_queue"], df.loc["a-7", "feedback_source"], df.loc["a-7", "corrections"]) == (
        "opsigelse",
        "supervisor",
        2,
    )
    assert df.loc["b-1", "text"] == "Min regning på 499 kr er for høj, [NAVN] æøå 🙂"  # Danish letters and emoji intact
    assert len(read_log(engine, model_version="2")) == 0
    engine.dispose()


@pytest.mark.parametrize("server", ["postgres", "mysql"])
def test_outage_rows_wait_overflow_is_counted_and_writing_resumes(server, request):
    url = fresh(server_database(request.getfixturevalue(f"{server}_engine"), "emailrouter_log"))
    target = sa.engine.make_url(url)
    proxy = TcpProxy(target.host, target.port).start()
    plog = PredictionLog(proxy.url(url), queue_size=200, batch_size=50, flush_seconds=0.05).start()
    try:
        plog.put(rows("up", 100))
        assert plog.flush(30) and plog.stats["written"] == 100
        proxy.stop()  # the server goes away mid-traffic
        for i in range(6):
            plog.put(rows(f"down{i}", 50))
            time.sleep(0.05)
        time.sleep(1)
        st = dict(plog.stats)
        assert (
            st["written"] == 100 and st["write_errors"] >= 1 and st["dropped"] > 0
        )  # the queue (200) and one batch held
        assert st["put"] == st["written"] + st["dropped"] + st["rejected"] + plog.pending == 400
        proxy.start()  # and comes back: the writer catches up by itself
        assert plog.flush(60)
    finally:
        st = plog.stop()
        proxy.stop()
    assert st["lost"] == st["rejected"] == 0
    assert count(url) == st["written"] == 400 - st["dropped"]


def _server(model_dir, log_url, port):
    env = {
        **os.environ,
        "EMAILROUTER_MODEL_URI": str(model_dir),
        "EMAILROUTER_LOG_URL": log_url,
        "EMAILROUTER_LOG_FLUSH_SECONDS": "0.1",
        "EMAILROUTER_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "emailrouter.serve:app", "--port", str(port), "--host", "127.0.0.1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        try:
            if httpx.get(base + "/ready", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "server not ready in 120 s"
        time.sleep(0.3)


def _metric(base, line_start):
    for line in httpx.get(base + "/metrics").text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _wait(pred, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.1)
    return False


def test_server_predicts_through_an_outage_and_a_kill_loses_only_its_queue(tiny_model, postgres_engine):
    url = fresh(server_database(postgres_engine, "emailrouter_log"))
    target = sa.engine.make_url(url)
    proxy = TcpProxy(target.host, target.port).start()
    port = free_port()
    proc, base = _server(tiny_model.model_dir, proxy.url(url), port)
    written = 'emailrouter_log_rows_total{outcome="written"}'
    mail = {"subject": "Regning", "body": "Min regning er for høj denne måned, kan I se på den?"}
    try:
        codes = [httpx.post(base + "/predict", json=mail).status_code for _ in range(20)]
        assert codes == [200] * 20 and _wait(lambda: _metric(base, written) == 20)
        proxy.stop()  # the database goes away
        answers = [httpx.post(base + "/predict", json=mail) for _ in range(30)]
        assert [a.status_code for a in answers] == [200] * 30  # predictions do not notice
        fb = httpx.post(
            base + "/feedback", json={"request_id": answers[0].json()["request_id"], "true_queue": "regning"}
        )
        assert fb.status_code == 503 and "feedback store unavailable" in fb.json()["error"]
        assert _wait(lambda: _metric(base, "emailrouter_log_pending") == 30) and _metric(base, written) == 20
        proxy.start()  # it comes back
        assert _wait(lambda: _metric(base, written) == 50, 60)
        ok = httpx.post(
            base + "/feedback", json={"request_id": answers[0].json()["request_id"], "true_queue": "regning"}
        )
        assert ok.status_code == 200
        proxy.stop()  # down again, and the server is killed with rows waiting
        assert all(httpx.post(base + "/predict", json=mail).status_code == 200 for _ in range(25))
        assert _wait(lambda: _metric(base, "emailrouter_log_pending") == 25)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proxy.stop()
    assert count(url) == 50  # the 25 waiting rows are the loss, and all of it


def test_sqlite_full_disk_rows_wait_and_are_written_when_there_is_room(tmp_path):
    """SQLite's 'database or disk is full' (a page limit stands in for the full disk): nothing is lost, nothing
    corrupted."""
    url = f"sqlite:///{tmp_path / 'log.db'}"
    plog = PredictionLog(url, batch_size=50, flush_seconds=0.05)
    plog._connect()
    cap = {"pages": None}

    @sa.event.listens_for(plog.engine, "checkout")
    def _limit(dbapi_conn, record, proxy):
        cur = dbapi_conn.cursor()
        pages = cap["pages"] or 1073741823
        cur.execute(f"PRAGMA max_page_count = {pages}")
        cur.close()

    plog.start()
    plog.put(rows("before", 50))
    assert plog.flush(30)
    with plog.engine.connect() as c:
        cap["pages"] = c.exec_driver_sql("PRAGMA page_count").scalar()
    plog.engine.dispose()  # new connections get the limit: the disk is full
    plog.put(rows("full", 200, text="Lang mail om en regning, " * 200))
    time.sleep(1.5)
    assert plog.stats["written"] == 50 and plog.stats["write_errors"] >= 1 and plog.pending == 200
    cap["pages"] = None
    plog.engine.dispose()  # space again
    assert plog.flush(60)
    st = plog.stop()
    assert (st["written"], st["lost"], st["rejected"]) == (250, 0, 0) and count(url) == 250
    e = sa.create_engine(url)
    with e.connect() as c:
        assert c.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    e.dispose()


def test_request_ids_differing_in_case_are_different_answers(log_url):
    "MariaDB compares text without case by default; the log's request ids compare by their bytes on every database."
    from emailrouter.predlog import logged_request_ids

    plog = PredictionLog(log_url, flush_seconds=0.05).start()
    plog.put([prediction_row(rid, "x", ANSWER, "emailrouter", "1", 1.0) for rid in ("Case-q1", "case-q1", "CASE-q1")])
    assert plog.flush(30)
    st = plog.stop()
    assert (st["written"], st["rejected"]) == (3, 0)
    engine = log_engine(log_url)
    assert logged_request_ids(engine, ["case-q1", "cAsE-q1"]) == ["case-q1"]
    record_feedback(engine, "case-q1", "mobil", "agent", ["regning", "mobil"])
    df = read_log(engine).set_index("request_id")
    assert df.loc["case-q1", "true_queue"] == "mobil" and df["true_queue"].notna().sum() == 1
    engine.dispose()


def test_a_deleted_sqlite_log_is_created_anew_not_written_into_the_void(tmp_path):
    """Deleting the log's file while a server writes to it (`make clean`) must not send the next rows to an unlinked
    file."""
    path = tmp_path / "log.db"
    plog = PredictionLog(f"sqlite:///{path}", flush_seconds=0.05).start()
    plog.put(rows("before", 3))
    assert plog.flush(30)
    for f in tmp_path.glob("log.db*"):
        f.unlink()
    plog.put(rows("after", 4))
    assert plog.flush(30)
    plog.stop()
    assert count(f"sqlite:///{path}") == 4
