"""The API as a hostile client and a careless operator meet it: mail that is expensive to clean, an empty API key,
feedback across a model switch, re-used request ids, slow clients, and one error shape for every failure."""

import asyncio
import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

import emailrouter.serve.inference as serve_inference
from emailrouter.core import load_settings
from emailrouter.model import ROUTER_FILE
from emailrouter.serve import create_app
from emailrouter.testing import EMAILROUTER_CLI, serve_process, tiny_encoder

KEY = {"X-API-Key": "s3cret-key"}
MAIL = {"subject": "Regning", "body": "Hej, min regning er for høj denne måned. Kan I se på det?"}


# ---------------------------------------------------------------- mail that is expensive to clean


def test_a_mail_of_block_tags_is_answered_not_a_freeze(api_client, tiny_model):
    "The probe's mail: 15,000 empty paragraphs (45 KB). Cleaning is linear, so it is a quick, clear 422."
    with api_client(tiny_model.model_dir, raise_errors=False) as c:
        r = c.post("/predict", json={"subject": "Regning", "body": "<p>" * 15_000})
        assert r.status_code == 422 and "no text once HTML markup" in r.json()["error"]
        r = c.post("/predict", json={"subject": "Regning", "body": "<p>" * 15_000 + "Min regning er for høj"})
        assert r.status_code == 200, r.text


def test_cleaning_runs_off_the_event_loop(tiny_model, monkeypatch):
    "While a mail is being cleaned, /health and /ready answer: the cleaning no longer holds the event loop."
    finished = []
    real = serve_inference.clean_email

    def slow(subject, body):
        time.sleep(1.0)
        finished.append(body)
        return real(subject, body)

    monkeypatch.setattr(serve_inference, "clean_email", slow)

    async def scenario():
        app = create_app(load_settings(model_uri=str(tiny_model.model_dir)))
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
                mail = {"subject": "Tv", "body": "Min tv-boks viser kun sort skærm"}
                predict = asyncio.create_task(c.post("/predict", json=mail, timeout=30))
                await asyncio.sleep(0.1)
                health, ready = await c.get("/health"), await c.get("/ready")
                answered_before_cleaned = mail["body"] not in finished
                return health.status_code, ready.status_code, answered_before_cleaned, (await predict).status_code

    assert asyncio.run(scenario()) == (200, 200, True, 200)


def _busy(seconds: float):
    "Use `seconds` of this thread's CPU time, as an expensive mail would."
    t = time.thread_time()
    while time.thread_time() - t < seconds:
        pass


def test_a_mail_over_the_cleaning_budget_is_a_clear_422(api_client, tiny_model, monkeypatch):
    real = serve_inference.clean_email
    monkeypatch.setattr(serve_inference, "clean_email", lambda s, b: (_busy(0.5), real(s, b))[1])
    monkeypatch.setattr(
        serve_inference.Cleaner, "WAIT_BUDGETS", 50
    )  # a loaded CI machine must not make it a wait (503)
    with api_client(tiny_model.model_dir, raise_errors=False, clean_timeout_ms=100) as c:
        r = c.post("/predict/batch", json={"emails": [MAIL, MAIL]})
        assert r.status_code == 422
        assert "emails[0].body could not be cleaned within EMAILROUTER_CLEAN_TIMEOUT_MS=100 ms" in r.json()["error"]


def test_a_mail_that_only_waits_for_the_cpu_is_not_blamed(api_client, tiny_model, monkeypatch):
    "Time a mail spends waiting behind other work (here asleep, using no CPU) is the server's, not the sender's."
    real = serve_inference.clean_email
    monkeypatch.setattr(serve_inference, "clean_email", lambda s, b: (time.sleep(0.3), real(s, b))[1])
    monkeypatch.setattr(serve_inference.Cleaner, "WAIT_BUDGETS", 20)
    with api_client(tiny_model.model_dir, raise_errors=False, clean_timeout_ms=100) as c:
        assert c.post("/predict", json=MAIL).status_code == 200  # 3 budgets of waiting: cleaned and answered
    monkeypatch.setattr(serve_inference, "clean_email", lambda s, b: (time.sleep(1.0), real(s, b))[1])
    monkeypatch.setattr(serve_inference.Cleaner, "WAIT_BUDGETS", 5)
    with api_client(tiny_model.model_dir, raise_errors=False, clean_timeout_ms=100) as c:
        r = c.post("/predict", json=MAIL)  # 10 budgets: busy, retry; not a 422
        assert r.status_code == 503 and "server busy" in r.json()["error"]


# ---------------------------------------------------------------- the API key


@pytest.mark.parametrize("start", ["uvicorn", "emailrouter"])
def test_an_empty_api_key_refuses_to_start(tiny_model, tmp_path, start):
    cmd = (
        [sys.executable, "-m", "uvicorn", "emailrouter.serve:app", "--port", "0"]
        if start == "uvicorn"
        else [EMAILROUTER_CLI, "serve", "--port", "0"]
    )
    env = {**os.environ, "EMAILROUTER_MODEL_URI": str(tiny_model.model_dir), "EMAILROUTER_API_KEY": "  "}
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert p.returncode != 0
    assert "EMAILROUTER_API_KEY: Value error, is empty or only whitespace" in p.stderr, p.stderr[-2000:]
    assert "Traceback" not in p.stderr


def test_the_server_says_whether_authentication_is_on(tiny_model, tmp_path):
    env = {"EMAILROUTER_MODEL_URI": str(tiny_model.model_dir), "EMAILROUTER_LOG_URL": ""}
    with serve_process([EMAILROUTER_CLI, "serve", "--port", "{port}"], env=env, cwd=tmp_path) as url:
        assert httpx.post(url + "/predict", json=MAIL, timeout=30).status_code == 200
    assert "authentication is OFF: EMAILROUTER_API_KEY is not set" in url.proc.stdout.read()
    with serve_process(
        [EMAILROUTER_CLI, "serve", "--port", "{port}"], env={**env, "EMAILROUTER_API_KEY": "s3cret-key"}, cwd=tmp_path
    ) as url:
        assert httpx.post(url + "/predict", json=MAIL, timeout=30).status_code == 401
        assert httpx.post(url + "/predict", json=MAIL, headers=KEY, timeout=30).status_code == 200
    out = url.proc.stdout.read()
    assert "authentication is on" in out and "s3cret-key" not in out


# ---------------------------------------------------------------- feedback and request ids


def test_feedback_is_checked_against_the_model_that_answered(api_client, tiny_model, tmp_path):
    "After a reload to a model with other queues, an older answer keeps its own queues for feedback."
    old_queues = tiny_model.data.unique_tags
    new_queues = ["flytning_ny", "regning", "tv"]
    other = tiny_encoder(tmp_path / "other", "convbert", labels=new_queues)
    (other / ROUTER_FILE).write_text(json.dumps({"max_length": 64, "truncation": "head"}))
    serving = tmp_path / "serving"
    serving.symlink_to(tiny_model.model_dir, target_is_directory=True)
    only_old = next(q for q in old_queues if q not in new_queues)
    with api_client(serving, raise_errors=False, log_flush_seconds=0.05) as c:
        old_rid = c.post("/predict", json=MAIL).json()["request_id"]
        assert c.app.state.recorder.log.flush()
        serving.unlink()
        serving.symlink_to(other, target_is_directory=True)
        assert c.post("/admin/reload").status_code == 200
        new_rid = c.post("/predict", json=MAIL).json()["request_id"]
        assert c.post("/feedback", json={"request_id": old_rid, "true_queue": only_old}).status_code == 200
        r = c.post("/feedback", json={"request_id": old_rid, "true_queue": "flytning_ny"})
        assert r.status_code == 422 and "which answered this mail" in r.json()["error"]
        # the new answer, maybe not written yet, is checked against the new model's queues
        assert c.post("/feedback", json={"request_id": new_rid, "true_queue": "flytning_ny"}).status_code == 200
        assert c.post("/feedback", json={"request_id": new_rid, "true_queue": only_old}).status_code == 422


def test_a_reused_request_id_is_refused_before_answering(api_client, tiny_model, tmp_path):
    log_url = f"sqlite:///{tmp_path / 'log.db'}"
    with api_client(tiny_model.model_dir, raise_errors=False, log_url=log_url, log_flush_seconds=0.05) as c:
        first = c.post("/predict", json=MAIL, headers={"X-Request-ID": "mail-1"})
        assert first.status_code == 200
        again = c.post("/predict", json=MAIL, headers={"X-Request-ID": "mail-1"})
        assert (
            again.status_code == 409 and "mail-1" in again.json()["error"] and "X-Request-ID" in again.json()["error"]
        )
        assert (
            c.post("/predict/batch", json={"emails": [MAIL, MAIL]}, headers={"X-Request-ID": "b-1"}).status_code == 200
        )
        assert c.post("/predict/batch", json={"emails": [MAIL]}, headers={"X-Request-ID": "b-1"}).status_code == 409
        # an id whose request failed was never answered: it may be used again
        assert c.post("/predict", json={"body": " "}, headers={"X-Request-ID": "mail-2"}).status_code == 422
        assert c.post("/predict", json=MAIL, headers={"X-Request-ID": "mail-2"}).status_code == 200
        assert c.app.state.recorder.log.flush()
        assert c.app.state.recorder.log.stats["rejected"] == 0
    # a restarted server knows the ids from the log
    with api_client(tiny_model.model_dir, raise_errors=False, log_url=log_url) as c:
        assert c.post("/predict", json=MAIL, headers={"X-Request-ID": "mail-1"}).status_code == 409
        assert c.post("/predict", json=MAIL, headers={"X-Request-ID": "mail-3"}).status_code == 200


def test_request_ids_are_unchecked_but_served_when_the_log_is_down(api_client, tiny_model, tmp_path, caplog):
    "A log database that cannot be asked costs the check, never the prediction."
    bad = tmp_path / "file"
    bad.write_text("not a folder")
    with api_client(tiny_model.model_dir, raise_errors=False, log_url=f"sqlite:///{bad}/log.db") as c:
        assert c.post("/predict", json=MAIL, headers={"X-Request-ID": "mail-9"}).status_code == 200
        assert (
            c.post("/predict", json=MAIL, headers={"X-Request-ID": "mail-9"}).status_code == 409
        )  # memory still knows
    assert "request ids not checked against the log" in caplog.text


def test_request_ids_without_a_log_are_remembered_within_bounds(api_client, tiny_model):
    with api_client(tiny_model.model_dir, raise_errors=False, log_url="", log_queue_size=3) as c:
        for i in range(20):
            assert c.post("/predict", json=MAIL, headers={"X-Request-ID": f"m-{i}"}).status_code == 200
        assert c.post("/predict", json=MAIL, headers={"X-Request-ID": "m-19"}).status_code == 409
        assert len(c.app.state.recorder.recent) <= 6


# ---------------------------------------------------------------- one error shape


@pytest.mark.parametrize(
    "method,path,content,ctype,status,words",
    [
        ("GET", "/no/such/route", None, None, 404, "no such route"),
        ("GET", "/predict", None, None, 405, "method not allowed"),
        (
            "POST",
            "/predict",
            b'{"body":' + b"[" * 20_000 + b"]" * 20_000 + b"}",
            "application/json",
            400,
            "not valid JSON",
        ),
        ("POST", "/predict", b'{"body": "x", "id": ' + b"9" * 5000 + b"}", "application/json", 400, "not valid JSON"),
        ("POST", "/predict", b'{"body": "a\x00b"}', "application/json", 422, "not valid JSON"),
        ("POST", "/predict", b'{"body": "hej"}', "text/plain", 415, "Content-Type: application/json"),
        ("POST", "/predict", b"body=hej", "application/x-www-form-urlencoded", 415, "as JSON"),
    ],
)
def test_every_error_has_the_documented_shape(api_client, tiny_model, method, path, content, ctype, status, words):
    with api_client(tiny_model.model_dir, raise_errors=False) as c:
        r = c.request(method, path, content=content, headers={"content-type": ctype} if ctype else {})
        assert r.status_code == status, r.text
        body = r.json()
        assert set(body) == {"error", "detail"} and words in json.dumps(body), body
        assert '"13"' not in r.text and '"11"' not in r.text


def test_openapi_declares_the_key_so_swagger_can_send_it(api_client, tiny_model):
    with api_client(tiny_model.model_dir, raise_errors=False, api_key="s3cret-key") as c:
        spec = c.get("/openapi.json").json()
        schemes = spec["components"]["securitySchemes"]
        assert schemes["X-API-Key"] == {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "the server's EMAILROUTER_API_KEY",
        }
        assert schemes["Bearer"]["scheme"] == "bearer"
        for path in ("/predict", "/predict/batch", "/feedback", "/model", "/admin/reload"):
            op = next(iter(spec["paths"][path].values()))
            assert {"X-API-Key": []} in op["security"], path
        assert "security" not in spec["paths"]["/health"]["get"]
        assert c.post("/predict", json=MAIL, headers={"Authorization": "Bearer s3cret-key"}).status_code == 200


# ---------------------------------------------------------------- slow clients


def _read_all(sock: socket.socket, limit: float = 20.0) -> bytes:
    "What the server sends until it closes the connection (at most `limit` seconds: a server that never closes fails)."
    sock.settimeout(limit)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        raise AssertionError(f"the server kept the connection open for {limit} s; got {data[:200]!r}") from None
    return data


@pytest.fixture(scope="module")
def slow_server(tiny_model, tmp_path_factory):
    env = {
        "EMAILROUTER_MODEL_URI": str(tiny_model.model_dir),
        "EMAILROUTER_READ_TIMEOUT_SECONDS": "1",
        "EMAILROUTER_KEEPALIVE_SECONDS": "1",
        "EMAILROUTER_LOG_URL": "",
    }
    with serve_process(
        [EMAILROUTER_CLI, "serve", "--port", "{port}"], env=env, cwd=tmp_path_factory.mktemp("slow")
    ) as url:
        yield url


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=5)


def test_unfinished_headers_get_408_and_the_connection_closed(slow_server):
    with _connect(slow_server) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: appl")
        data = _read_all(s)
    assert data.startswith(b"HTTP/1.1 408") and b'"error":"request not received within' in data


def test_an_unfinished_body_gets_408_and_the_connection_closed(slow_server):
    with _connect(slow_server) as s:
        s.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            b'{"body": "hej'
        )
        data = _read_all(s)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408") and b"connection: close" in head.lower()
    assert json.loads(body)["error"] == "request body not received within EMAILROUTER_READ_TIMEOUT_SECONDS=1 s"


def test_a_silent_connection_is_closed(slow_server):
    with _connect(slow_server) as s:
        assert _read_all(s) == b""
        # and the server still answers
    assert httpx.post(slow_server + "/predict", json=MAIL, timeout=30).status_code == 200


def test_the_body_deadline_holds_under_plain_uvicorn(tiny_model, tmp_path):
    env = {
        "EMAILROUTER_MODEL_URI": str(tiny_model.model_dir),
        "EMAILROUTER_READ_TIMEOUT_SECONDS": "1",
        "EMAILROUTER_LOG_URL": "",
    }
    cmd = [sys.executable, "-m", "uvicorn", "emailrouter.serve:app", "--port", "{port}"]
    with serve_process(cmd, env=env, cwd=tmp_path) as url, _connect(url) as s:
        s.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        assert _read_all(s).startswith(b"HTTP/1.1 408")


def test_oversized_headers_get_431_before_they_fill_memory(slow_server):
    with _connect(slow_server) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
        try:
            for _ in range(64):
                s.sendall(b"a" * 16_384)  # 1 MB of one header, never finished
        except OSError:
            pass  # the server may close while we still send
        data = _read_all(s)
    assert data.startswith(b"HTTP/1.1 431") and b'"error":"request headers over 65536 bytes"' in data


def test_unparseable_http_gets_the_json_error_shape(slow_server):
    with _connect(slow_server) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
        data = _read_all(s)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and json.loads(body)["error"].startswith("not a valid HTTP request")
