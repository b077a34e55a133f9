"""The routing API against a tiny real model: every endpoint, every bad input, auth, reload, offline docs, a real
process."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from emailrouter.core import load_settings
from emailrouter.serve import create_app
from emailrouter.testing import EMAILROUTER_CLI, serve_process

KEY = {"X-API-Key": "s3cret-key"}
MAIL = {
    "id": "a-1",
    "subject": "Flytning",
    "body": "Hej, jeg flytter den 1. maj til Vestergade 3, 8000 Aarhus C og vil tage mit bredbånd med.",
}


@pytest.fixture
def client(api_client, tiny_model):
    with api_client(tiny_model.model_dir, confidence_threshold=0.0) as c:
        yield c


def test_predict_contract(client, tiny_model):
    r = client.post("/predict", json=MAIL)
    assert r.status_code == 200 and r.headers["x-request-id"]
    p = r.json()
    assert set(p) == {"id", "request_id", "queue", "score", "top_k", "route", "model", "latency_ms"}
    assert p["request_id"] == r.headers["x-request-id"]
    assert p["id"] == "a-1" and p["queue"] in tiny_model.data.unique_tags and 0 <= p["score"] <= 1
    assert [q["queue"] for q in p["top_k"]][0] == p["queue"] and len(p["top_k"]) == 3
    assert p["top_k"][0]["score"] >= p["top_k"][1]["score"] >= p["top_k"][2]["score"]
    assert p["route"] == p["queue"]  # threshold 0: always confident
    assert p["model"]["name"] == "model" and p["latency_ms"] >= 0


def test_same_answer_as_the_router(client, tiny_model):
    """The server answers what the router answers with the backend the server picked (its ONNX export): the same queue,
    the same score up to int8 rounding (dynamically quantized activations round differently with the batch's shape
    and the CPU's kernels: 3.6e-5 seen on an AVX2-only EPYC)."""
    from emailrouter.model import EmailRouter

    assert client.get("/model").json()["backend"] == "onnx"
    want = EmailRouter(tiny_model.model_dir, backend="onnx").route([MAIL])[0]
    got = client.post("/predict", json=MAIL).json()
    assert got["queue"] == want["queue"] and abs(got["score"] - want["score"]) < 5e-4


def test_threshold_routes_to_manual_review(api_client, tiny_model):
    with api_client(tiny_model.model_dir, confidence_threshold=1.0, review_queue="til_manuel") as c:
        p = c.post("/predict", json=MAIL).json()
        assert p["route"] == "til_manuel" and p["queue"] != "til_manuel"
        metrics = c.get("/metrics").text
        assert "emailrouter_manual_review_share 1.0" in metrics and "emailrouter_manual_review_total 1.0" in metrics


def test_the_models_own_thresholds_route(api_client, tiny_model, tmp_path):
    "Thresholds stored with the model decide the route per predicted queue; the setting overrides them when given."
    import shutil

    from emailrouter.model import ROUTER_FILE, EmailRouter

    model = tmp_path / "m"
    shutil.copytree(tiny_model.model_dir, model)
    queue = EmailRouter(model).route([MAIL])[0]["queue"]
    meta = json.loads((model / ROUTER_FILE).read_text())
    meta.update(temperature=0.5, thresholds={"global": 0.0, "per_queue": {queue: 1.0}})
    (model / ROUTER_FILE).write_text(json.dumps(meta))
    with api_client(model) as c:
        p = c.post("/predict", json=MAIL).json()
        assert p["queue"] == queue and p["route"] == "manuel_behandling"  # its queue's threshold is 1.0
        assert (
            c.get("/model").json()["thresholds"]["per_queue"] == {queue: 1.0}
            and c.get("/model").json()["temperature"] == 0.5
        )
    with api_client(model, confidence_threshold=0.0) as c:
        assert c.post("/predict", json=MAIL).json()["route"] == queue  # one number for all queues, set by the operator
    sharper = EmailRouter(model).route([MAIL])[0]["score"]
    assert sharper > EmailRouter(tiny_model.model_dir).route([MAIL])[0]["score"]  # temperature 0.5 sharpens the scores


def test_backend_auto_serves_the_gated_export_or_falls_back(api_client, tiny_model, tmp_path, caplog):
    """auto serves the fastest variant the export gate passed, by the export's timings on this CPU; onnx serves the
    gate's ONNX variant; with the export refused auto serves PyTorch and logs why, and onnx refuses."""
    import shutil

    from emailrouter.model import ONNX_DIR, ONNX_VARIANTS, PARITY_FILE

    model = tmp_path / "m"
    shutil.copytree(tiny_model.model_dir, model)
    parity = json.loads((model / ONNX_DIR / PARITY_FILE).read_text())
    timed = parity["speed"]["mails_per_second"]
    fastest = max(timed, key=timed.get)
    assert set(timed) == set(parity["passing"]) and "torch" in timed
    with api_client(model) as c:
        info = c.get("/model").json()
        assert (info["backend"], info["variant"]) == ("onnx" if fastest in ONNX_VARIANTS else fastest, fastest)
        assert c.post("/predict", json=MAIL).status_code == 200
    with api_client(model, serve_backend="onnx") as c:
        assert c.get("/model").json()["variant"] == parity["variant"]
    (model / ONNX_DIR / PARITY_FILE).write_text(json.dumps({"refused": "int8: top-1 agreement 0.9 < 0.995"}))
    with caplog.at_level(logging.WARNING, logger="emailrouter.model"), api_client(model) as c:
        info = c.get("/model").json()
        assert (info["backend"], info["variant"]) == ("torch", "torch")
        assert c.post("/predict", json=MAIL).status_code == 200
    assert any("serving with PyTorch" in r.getMessage() and "agreement 0.9" in r.getMessage() for r in caplog.records)
    with pytest.raises(Exception, match="the export was refused"), api_client(model, serve_backend="onnx"):
        pass


def test_batch_in_order(client):
    mails = [
        {"id": str(i), "body": b}
        for i, b in enumerate(
            ["Min regning er for høj", "Tv-boksen virker ikke", "Jeg vil opsige", "Router blinker rødt"]
        )
    ]
    r = client.post("/predict/batch", json={"emails": mails})
    assert r.status_code == 200
    assert [p["id"] for p in r.json()["predictions"]] == ["0", "1", "2", "3"]
    single = [client.post("/predict", json=m).json()["queue"] for m in mails]
    assert [p["queue"] for p in r.json()["predictions"]] == single


@pytest.mark.parametrize(
    "payload,status,words",
    [
        ({}, 422, "body"),
        ({"subject": "Hej"}, 422, "body"),
        ({"body": 123}, 422, "body"),
        ({"body": None}, 422, "body"),
        ({"body": ["a"]}, 422, "body"),
        ({"body": ""}, 422, "empty or only whitespace"),
        ({"body": " \n\t "}, 422, "empty or only whitespace"),
        ({"body": "<html><body><img src='cid:1'></body></html>"}, 422, "no text once HTML"),
        ({"body": "<div><br></div>"}, 422, "no text once HTML"),
        ({"body": "> kun citat\n> fra tidligere"}, 422, "no text once"),
        ({"body": "Hej", "unknown": 1}, 422, "unknown"),
        ({"body": "Hej", "language": "not a language"}, 422, "language"),
        ({"body": "x" * 70_000}, 413, "MAX_BODY_BYTES"),
    ],
)
def test_bad_input_is_4xx_with_a_reason(client, payload, status, words):
    r = client.post("/predict", json=payload)
    assert r.status_code == status, r.text
    assert words in json.dumps(r.json()), r.json()
    assert r.json()["error"]


def test_streamed_body_over_the_limit_and_an_unexpected_error(api_client, tiny_model):
    """A body sent in chunks without a length is still cut at the limit; a failure inside gives a JSON 500 naming the
    request."""
    with api_client(tiny_model.model_dir) as c:
        r = c.post("/predict", content=(b"x" * 10_000 for _ in range(20)), headers={"content-type": "application/json"})
        assert r.status_code == 413 and "over" in r.json()["error"]

        def boom(texts):
            raise RuntimeError("model failed on secret text")

        c.app.state.holder.model.router.score = boom
        r = c.post("/predict", json=MAIL, headers={"X-Request-ID": "req-7"})
        assert (
            r.status_code == 500
            and r.json()["detail"] == {"request_id": "req-7"}
            and r.headers["x-request-id"] == "req-7"
        )
        assert "secret" not in r.text
        assert c.get("/health").status_code == 200  # the server goes on


def test_raw_bad_bodies(client):
    r = client.post("/predict", content=b'{"body": "caf\xe9"}', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "UTF-8" in r.json()["error"]
    r = client.post("/predict", content=b'{"body": ', headers={"content-type": "application/json"})
    assert r.status_code == 422
    r = client.post("/predict", content=b"x" * 200_000, headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_overlong_text_is_truncated_not_refused(client):
    body = "Jeg flytter og har mange spørgsmål. " * 1500  # ~54 kB, far beyond 64 tokens
    assert client.post("/predict", json={"body": body}).status_code == 200


def test_batch_limits(api_client, tiny_model):
    with api_client(tiny_model.model_dir, max_batch_items=3) as c:
        r = c.post("/predict/batch", json={"emails": [{"body": "hej"}] * 4})
        assert r.status_code == 413 and "MAX_BATCH_ITEMS=3" in r.json()["error"]
        assert c.post("/predict/batch", json={"emails": []}).status_code == 422
        r = c.post("/predict/batch", json={"emails": [{"body": "Min regning"}, {"body": "   "}]})
        assert r.status_code == 422 and "emails[1].body" in r.json()["error"]


def test_lax_input_ignores_unknown_fields(api_client, tiny_model):
    with api_client(tiny_model.model_dir, strict_input=False) as c:
        assert c.post("/predict", json={"body": "Min regning", "x-mailer": "Outlook"}).status_code == 200


def test_api_key(api_client, tiny_model):
    with api_client(tiny_model.model_dir, api_key="s3cret-key") as c:
        assert c.post("/predict", json=MAIL).status_code == 401
        assert c.post("/predict", json=MAIL, headers={"X-API-Key": "wrong"}).status_code == 401
        assert c.post("/predict", json=MAIL, headers=KEY).status_code == 200
        assert c.post("/predict", json=MAIL, headers={"Authorization": "Bearer s3cret-key"}).status_code == 200
        assert c.post("/predict/batch", json={"emails": [MAIL]}).status_code == 401
        assert c.post("/admin/reload").status_code == 401
        assert c.get("/model").status_code == 401
        assert c.get("/health").status_code == 200 and c.get("/ready").status_code == 200
        r = c.post("/predict", json=MAIL)
        assert "s3cret-key" not in r.text


def test_health_ready_model_metrics(client, tiny_model):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json()["status"] == "ready"
    m = client.get("/model").json()
    assert m["labels"] == tiny_model.data.unique_tags and m["threshold_override"] == 0.0 and m["max_length"] == 64
    assert m["temperature"] == 1.0 and m["thresholds"] == {}
    client.post("/predict", json=MAIL)
    client.post("/predict", json={})
    text = client.get("/metrics").text
    assert 'emailrouter_requests_total{route="/predict",status="200"}' in text
    assert 'emailrouter_requests_total{route="/predict",status="422"}' in text
    assert "emailrouter_request_latency_seconds_bucket" in text and "emailrouter_predictions_total{queue=" in text
    assert 'emailrouter_model_info{name="model"' in text


def test_docs_and_openapi(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/predict", "/predict/batch", "/health", "/ready", "/model", "/metrics", "/admin/reload"} <= set(
        spec["paths"]
    )


def test_logs_have_request_id_and_no_text(client, caplog):
    secret_body = "Mit cpr er 010203-1234 og jeg hedder Hemmelig Hansen"
    with caplog.at_level(logging.INFO, logger="emailrouter"):
        client.post("/predict", json={"body": secret_body, "language": "da"}, headers={"X-Request-ID": "req-42"})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "emailrouter.serve.access"]
    assert (
        lines
        and lines[-1]["request_id"] == "req-42"
        and lines[-1]["status"] == 200
        and lines[-1]["languages"] == ["da"]
    )
    assert "010203" not in caplog.text and "Hemmelig" not in caplog.text


def test_registry_alias_and_hot_reload(tiny_model, tmp_path):
    "Serve models:/name@champion from a real MLflow registry; promote a new version; reload swaps it in."
    from emailrouter.tracking import log_training, promote

    s = load_settings(output_dir=tmp_path / "runs", model_name="api-test")
    log_training(tiny_model.model_dir, tiny_model.data, {}, {"test_macro_f1": 0.5}, settings=s)
    promote(s)
    with TestClient(create_app(s)) as c:
        assert c.get("/model").json()["version"] == "1" and c.get("/model").json()["alias"] == "champion"
        assert c.get("/model").json()["metrics"]["test_macro_f1"] == 0.5
        log_training(tiny_model.model_dir, tiny_model.data, {}, {"test_macro_f1": 0.6}, settings=s)
        promote(s)
        r = c.post("/admin/reload")
        assert r.status_code == 200 and r.json()["version"] == "2" and r.json()["previous_version"] == "1"
        assert c.post("/predict", json=MAIL).json()["model"]["version"] == "2"


def test_reload_failure_keeps_serving(api_client, tiny_model, tmp_path):
    import shutil

    model = tmp_path / "m"
    shutil.copytree(tiny_model.model_dir, model)
    with api_client(model) as c:
        (model / "config.json").unlink()
        r = c.post("/admin/reload")
        assert r.status_code == 409 and "still serving" in r.json()["error"]
        assert c.post("/predict", json=MAIL).status_code == 200


def test_missing_model_exits_with_one_line(tmp_path):
    env = {
        **os.environ,
        "EMAILROUTER_OUTPUT_DIR": str(tmp_path),
        "EMAILROUTER_MODEL_URI": "models:/nothing-here@champion",
    }
    p = subprocess.run(
        [sys.executable, "-m", "uvicorn", "emailrouter.serve:app", "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )
    assert p.returncode != 0
    assert "models:/nothing-here@champion" in p.stderr and "emailrouter train --demo" in p.stderr
    assert "Traceback" not in p.stderr


def test_uvicorn_factory(tiny_model, tmp_path):
    """`uvicorn --factory emailrouter.serve:app_from_environment`: settings from the environment, the model loaded
    before the server answers, and the JSON access log written (the factory sets up logging)."""
    uvicorn = str(Path(sys.executable).with_name("uvicorn"))
    env = {"EMAILROUTER_OUTPUT_DIR": str(tmp_path), "EMAILROUTER_MODEL_URI": str(tiny_model.model_dir)}
    cmd = [uvicorn, "--factory", "emailrouter.serve:app_from_environment", "--port", "{port}"]
    with serve_process(cmd, env=env, cwd=tmp_path) as url:
        r = httpx.post(url + "/predict", json=MAIL, headers={"x-request-id": "factory-1"}, timeout=30)
        assert r.status_code == 200 and r.json()["request_id"] == "factory-1"
    assert '"request_id": "factory-1"' in url.proc.stdout.read()  # the access log line
    p = subprocess.run(
        [uvicorn, "--factory", "emailrouter.serve:app_from_environment", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, **env, "EMAILROUTER_MODEL_URI": str(tmp_path / "none")},
    )
    assert p.returncode != 0 and "emailrouter serve: no model folder at" in p.stderr and "Traceback" not in p.stderr


def test_cli_serve_with_two_workers(tiny_model, tmp_path):
    "`emailrouter serve --workers 2`: the supervisor only checks the model; each worker loads and serves it."
    env = {"EMAILROUTER_OUTPUT_DIR": str(tmp_path), "EMAILROUTER_MODEL_URI": str(tiny_model.model_dir)}
    with serve_process([EMAILROUTER_CLI, "serve", "--workers", "2", "--port", "{port}"], env=env, cwd=tmp_path) as url:
        assert httpx.post(url + "/predict", json=MAIL, timeout=30).status_code == 200
    p = subprocess.run(
        [EMAILROUTER_CLI, "serve", "--workers", "2", "--model", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        cwd=tmp_path,
    )
    assert p.returncode == 2 and "no model folder" in p.stderr and "Traceback" not in p.stderr


def test_uvicorn_serves_docs_and_predictions(tiny_model, tmp_path):
    "The real server process: `uvicorn emailrouter.serve:app`, over loopback."
    cmd = [sys.executable, "-m", "uvicorn", "emailrouter.serve:app", "--port", "{port}"]
    with serve_process(cmd, env={"EMAILROUTER_MODEL_URI": str(tiny_model.model_dir)}, cwd=tmp_path) as url:
        assert httpx.get(url + "/docs").status_code == 200
        r = httpx.post(url + "/predict", json=MAIL, timeout=30)
        assert r.status_code == 200 and r.json()["queue"]


def test_server_process_imports_no_training_stack():
    "The API server needs inference and the registry, not the Trainer, scikit-learn, datasets or plotting."
    code = (
        "import sys, emailrouter.serve; print(sorted(m for m in ('emailrouter.train', 'emailrouter.data', 'sklearn', "
        "'datasets', 'matplotlib', 'emailrouter.explore', 'emailrouter.metrics') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


# --- text that is not valid Unicode, on every text field and route ---


@pytest.mark.parametrize(
    "raw,field",
    [
        (b'{"body": "\\ud800 hej"}', "body"),
        (b'{"body": "hej", "subject": "\\udfff"}', "subject"),
        (b'{"body": "hej", "id": "a\\udbff"}', "id"),
        (b'{"body": "hej \\ud83d"}', "body"),  # half an emoji
    ],
)
def test_lone_surrogates_are_a_clear_422(client, raw, field):
    r = client.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert any(d["field"] == field and "surrogate" in d["problem"] for d in r.json()["detail"]), r.json()


def test_lone_surrogates_in_batches_and_keys(client):
    r = client.post(
        "/predict/batch",
        content=b'{"emails": [{"body": "ok"}, {"body": "\\ud800"}]}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "emails.1.body"
    r = client.post("/predict", content=b'{"body": "ok", "\\ud800": 1}', headers={"content-type": "application/json"})
    assert (
        r.status_code == 422 and "unicode" in r.json()["detail"][0]["problem"]
    )  # a surrogate in a key: the parser refuses it


def test_a_real_emoji_pair_is_fine(client):
    assert (
        client.post(
            "/predict", content=b'{"body": "Min regning \\ud83d\\ude00"}', headers={"content-type": "application/json"}
        ).status_code
        == 200
    )


def test_control_characters_are_cleaned_not_fatal(client):
    assert client.post("/predict", json={"body": "Min regning\u0000 er\u0007 for høj\u001b[0m"}).status_code == 200
    r = client.post("/predict", json={"body": "\u0000\u0001\u0002"})
    assert r.status_code == 422 and "no text" in r.json()["error"]


ANY_CHAR = st.characters(exclude_categories=())  # every code point, lone surrogates and control characters included


@given(text=st.text(ANY_CHAR, max_size=60), field=st.sampled_from(["body", "subject", "id"]))
@hsettings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_json_string_gets_an_answer_not_a_500(client, text, field):
    "Arbitrary JSON strings (json.dumps escapes lone surrogates) on every text field: a 200 or a 4xx that says why."
    payload = {"body": "Min regning er for høj", field: text}
    r = client.post("/predict", content=json.dumps(payload), headers={"content-type": "application/json"})
    assert r.status_code in (200, 422), (r.status_code, r.text)
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        assert r.status_code == 422 and field in r.text


# --- API docs without internet ---


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_use_only_local_assets(client, page):
    import re

    html = client.get(page)
    assert html.status_code == 200
    assets = re.findall(r'(?:src|href)=["\']([^"\']+)["\']', html.text) + re.findall(
        r"url: *['\"]([^'\"]+)['\"]", html.text
    )
    assert assets and not [a for a in assets if "://" in a or a.startswith("//")], assets
    for a in assets:
        assert client.get(a).status_code == 200, a
