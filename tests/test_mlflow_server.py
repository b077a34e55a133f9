"""A remote MLflow tracking server with a login, as production has it: a real `mlflow server --app-name basic-auth`
process on loopback (its own SQLite stores and proxied artifacts). Credentials come from the environment; training logs
and registers through it, the promotion gate moves the alias, and the API serves the champion from it. The password
never reaches logs, run parameters or error messages."""

import os
import secrets
import subprocess
import sys

import httpx
import pytest

from emailrouter.core import load_settings
from emailrouter.testing import serve_process

MAIL = {"subject": "Flytning", "body": "Hej, jeg flytter til Vestergade 3, 8000 Aarhus C den 1. maj. Mvh Anna"}


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow-server")
    password = secrets.token_urlsafe(18)
    (root / "auth.ini").write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{root / 'auth.db'}\nadmin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(root / "auth.ini"),
        "MLFLOW_AUTH_ADMIN_PASSWORD": password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
    }
    cmd = [
        os.path.join(os.path.dirname(sys.executable), "mlflow"),
        "server",
        "--app-name",
        "basic-auth",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--workers",
        "1",
    ]
    with serve_process(cmd, ready_path="/health", env=env, cwd=root, timeout=240) as url:
        yield url, password


def remote_env(url, user, password, tmp_path, **extra):
    return {
        "EMAILROUTER_MLFLOW_TRACKING_URI": url,
        "EMAILROUTER_MLFLOW_TRACKING_USERNAME": user,
        "EMAILROUTER_MLFLOW_TRACKING_PASSWORD": password,
        "EMAILROUTER_OUTPUT_DIR": str(tmp_path),
        "EMAILROUTER_MODEL_NAME": "remote",
        **extra,
    }


def test_server_wants_a_login(mlflow_server):
    url, password = mlflow_server
    assert (
        httpx.get(url + "/api/2.0/mlflow/experiments/search", params={"max_results": 1}, timeout=60).status_code == 401
    )
    assert (
        httpx.get(
            url + "/api/2.0/mlflow/experiments/search", params={"max_results": 1}, auth=("admin", password), timeout=60
        ).status_code
        == 200
    )


def test_log_register_promote_serve(mlflow_server, tiny_model, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    from emailrouter.tracking import log_training, promote

    url, password = mlflow_server
    env = remote_env(url, "admin", password, tmp_path)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(k, "")  # restored afterwards
    s = load_settings()
    tracked = log_training(
        tiny_model.model_dir, tiny_model.data, {"learning_rate": 1e-4}, {"test_macro_f1": 0.5}, settings=s
    )
    assert promote(s)["promoted"]
    client = MlflowClient()
    version = client.get_model_version_by_alias("remote", "champion")
    run = client.get_run(version.run_id)
    assert run.data.metrics["test_macro_f1"] == 0.5 and tracked.run_id == version.run_id
    assert password not in str(run.data.params) and password not in str(run.data.tags)
    # the API, in its own process, serves the champion from the server: weights through the proxied artifact store
    with serve_process(
        [sys.executable, "-m", "uvicorn", "emailrouter.serve:app", "--port", "{port}"],
        env=env,
        cwd=tmp_path,
        timeout=180,
    ) as api:
        model = httpx.get(api + "/model", timeout=30).json()
        assert (model["name"], model["version"], model["alias"]) == ("remote", version.version, "champion")
        r = httpx.post(api + "/predict", json=MAIL, timeout=30)
        assert r.status_code == 200 and r.json()["queue"] in tiny_model.data.unique_tags
        api.proc.terminate()
        out = api.proc.communicate(timeout=30)[0]
    assert password not in out


def test_wrong_password_ends_with_one_line(mlflow_server, tmp_path):
    url, password = mlflow_server
    wrong = "not-" + password
    env = {**os.environ, **remote_env(url, "admin", wrong, tmp_path, EMAILROUTER_MODEL_URI="models:/remote@champion")}
    p = subprocess.run(
        [sys.executable, "-m", "uvicorn", "emailrouter.serve:app", "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        cwd=tmp_path,
    )
    assert p.returncode == 3, p.stderr[-2000:]
    assert "models:/remote@champion" in p.stderr and "refused the login" in p.stderr and "Traceback" not in p.stderr
    assert wrong not in p.stderr + p.stdout and password not in p.stderr + p.stdout
