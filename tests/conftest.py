"""Shared fixtures: real database servers (skipped with a reason where none runs), a tiny model, and clean settings."""

import inspect
import json
import os
import re
import shutil
import uuid
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

# Override with EMAILROUTER_TEST_MYSQL_URL / EMAILROUTER_TEST_POSTGRES_URL to point at other servers.
MYSQL_URL = os.environ.get("EMAILROUTER_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
POSTGRES_URL = os.environ.get("EMAILROUTER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _server(url: str, what: str):
    engine = sa.create_engine(url, pool_pre_ping=True)
    try:
        with engine.connect() as c:
            c.execute(sa.text("select 1"))
    except Exception as e:  # no server on this machine: skip, saying what is needed
        engine.dispose()
        pytest.skip(
            f"needs {what} at {engine.url.render_as_string(hide_password=True)} "
            f"(set EMAILROUTER_TEST_{what.split()[0].upper()}_URL to use another): {type(e).__name__}"
        )
    return engine


@pytest.fixture(scope="session")
def mysql_engine():
    engine = _server(MYSQL_URL, "MySQL server (MariaDB)")
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def postgres_engine():
    engine = _server(POSTGRES_URL, "Postgres server")
    yield engine
    engine.dispose()


def server_database(engine, name: str) -> str:
    "A database `name` of its own on the server behind `engine` (created when missing); returns its URL, password kept."
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        if engine.dialect.name == "postgresql":
            if not c.execute(sa.text("select 1 from pg_database where datname = :n"), {"n": name}).scalar():
                c.execute(sa.text(f'create database "{name}"'))
        else:
            c.execute(
                sa.text(f"create database if not exists `{name}` character set utf8mb4 collate utf8mb4_unicode_ci")
            )
    return engine.url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture
def table_name():
    return f"er_test_{uuid.uuid4().hex[:10]}"


@pytest.fixture(autouse=True)
def _no_stray_settings(monkeypatch, tmp_path):
    "Tests see default settings, whatever the developer's shell or .env says, and write only under tmp_path."
    for k in list(os.environ):
        if k.startswith("EMAILROUTER_") and not k.startswith("EMAILROUTER_TEST_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("EMAILROUTER_PROGRESS", "false")
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A tiny random ConvBERT classifier over the demo queues (the testing module's), saved as a model folder with its
    int8 ONNX export, with the demo data it routes and throw-away settings. Its answers are noise; the plumbing is
    real."""
    from emailrouter.data import load_emails
    from emailrouter.export import export_onnx
    from emailrouter.model import ROUTER_FILE
    from emailrouter.testing import scratch_settings, tiny_encoder

    root = tmp_path_factory.mktemp("tiny")
    s = scratch_settings(root)
    data = load_emails("demo:400", settings=s)
    model_dir = tiny_encoder(root / "model", "convbert", labels=data.unique_tags)
    (model_dir / ROUTER_FILE).write_text(json.dumps({"max_length": 64, "truncation": "head"}))
    export_onnx(model_dir, data.splits["validation"]["text"])
    return SimpleNamespace(model_dir=model_dir, data=data, settings=s)


def pytest_configure(config):
    for name, what in (
        ("database", "needs the MariaDB or PostgreSQL server"),
        ("browser", "drives headless Chromium"),
        ("slow", "starts processes (servers, the console script, venvs, Ray, MLflow, several trainers)"),
    ):
        config.addinivalue_line("markers", f"{name}: {what}; `make test-fast` leaves these out, CI runs them")
    # schemathesis passes cookies per request, which Starlette's TestClient deprecates; not our code
    config.addinivalue_line("filterwarnings", "ignore:Setting per-request cookies:DeprecationWarning")
    config.addinivalue_line("filterwarnings", "ignore:Use 'content=<...>':DeprecationWarning")


# Debian's Chromium and ChromeDriver for the browser tests (test_browser.py, test_dashboard.py)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="session")
def browser():
    "A headless Chromium driven by Selenium through Debian's chromedriver (Selenium Manager downloads nothing)."
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("needs Chromium and ChromeDriver (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1600",
    ):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    yield driver
    driver.quit()


# The fast lane (`make test-fast`): markers set from what a test uses, so that no test has to remember to carry one.
_SLOW_MODULES = {
    "test_inference_install",
    "test_encoders",
    "test_distributed",
    "test_tune",
    "test_batch",
    "test_mlflow_server",
    "test_cli",
}
_STARTS_A_PROCESS = re.compile(
    r"serve_process\(|subprocess\.(?:run|Popen|check_output)\(|\b_?cli\(|\brun\(inference_env"
)


BACKGROUND = {}  # work started when the tests are chosen, for the fixtures that need it: name -> Future


def pytest_collection_finish(session):
    "Where the inference-install tests will run, their fresh virtual environment is built beside the other tests."
    if any(getattr(item.module, "__name__", "") == "test_inference_install" for item in session.items):
        from concurrent.futures import ThreadPoolExecutor

        from test_inference_install import build_inference_env

        root = session.config._tmp_path_factory.mktemp("inference-venv")
        BACKGROUND["inference_env"] = ThreadPoolExecutor(1, thread_name_prefix="venv").submit(build_inference_env, root)


def pytest_collection_modifyitems(config, items):
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        params = {str(v) for v in getattr(getattr(item, "callspec", None), "params", {}).values()}
        if names & {"mysql_engine", "postgres_engine"} or params & {"postgres", "mysql"}:
            item.add_marker("database")
        if "browser" in names:
            item.add_marker("browser")
        try:
            src = inspect.getsource(item.function)
        except (OSError, TypeError):
            src = ""
        if item.module.__name__ in _SLOW_MODULES or names & {"slow_server"} or _STARTS_A_PROCESS.search(src):
            item.add_marker("slow")


@pytest.fixture
def api_client():
    """A factory of test clients on the routing API: `api_client(model, **settings)` serves `model` with those
    settings; `raise_errors=False` answers unexpected errors as the server does (a JSON 500) instead of raising them."""
    from fastapi.testclient import TestClient

    from emailrouter.core import load_settings
    from emailrouter.serve import create_app

    def make(model, raise_errors: bool = True, **settings):
        return TestClient(
            create_app(load_settings(model_uri=str(model), **settings)), raise_server_exceptions=raise_errors
        )

    return make
