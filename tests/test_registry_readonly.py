"""Loading a model never writes to where it comes from. A production server often runs as a user that may read the
MLflow store (its database and artifact folder, as the quickstart leaves them under `emailrouter-runs/`) and the model
folder, but not write to them. Each kind of model URI is loaded from a local store and a model folder whose every file
is checked before and after; then, with the store read-only, as an unprivileged user, and the API starts from it."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from emailrouter.testing import scratch_settings, serve_process

MAIL = {"subject": "Flytning", "body": "Hej, jeg flytter den 1. maj til Vestergade 3, 8000 Aarhus C. Mvh Anna"}
NOBODY = 65534


def tree(root: Path) -> dict[str, tuple]:
    "Every path under `root` with its mode, size, modification time and content hash: a write anywhere shows."
    out = {}
    for p in [root, *sorted(root.rglob("*"))]:
        st = p.lstat()
        out[str(p)] = (st.st_mode, st.st_size, st.st_mtime_ns, p.is_file() and hashlib.sha1(p.read_bytes()).hexdigest())
    return out


def changes(before: dict, after: dict) -> list[str]:
    return [p for p in sorted(set(before) | set(after)) if before.get(p) != after.get(p)]


def read_only(root: Path):
    """Every file and folder under `root` readable by all and writable by none (user root still may write). Readable by
    all because transformers saves weights readable by their owner only, which a server of another user cannot open."""
    for p in [root, *root.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)


@pytest.fixture(scope="module")
def store(tiny_model):
    """A registry of its own in a folder anyone may read: a local SQLite store and artifact folder with the tiny model
    as version 1 (@champion and @challenger), and a copy of the model folder. Both read-only."""
    from emailrouter.tracking import log_training, promote

    root = Path(tempfile.mkdtemp(prefix="er-readonly-"))
    root.chmod(0o755)  # pytest's own tmp folders are private to their owner
    model_dir = shutil.copytree(tiny_model.model_dir, root / "model")
    s = scratch_settings(root, model_name="readonly")
    tracked = log_training(model_dir, tiny_model.data, {}, {"test_macro_f1": 0.5}, settings=s)
    assert promote(s)["promoted"]
    read_only(root / "runs")
    read_only(model_dir)
    uris = ["models:/readonly@champion", "models:/readonly/1", f"runs:/{tracked.run_id}/model", str(model_dir)]
    yield SimpleNamespace(
        root=root,
        runs=root / "runs",
        model_dir=model_dir,
        settings=s,
        uris=uris,
        tracking_uri=s.mlflow_tracking_uri,
        labels=tiny_model.data.unique_tags,
    )
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_loading_writes_nothing(store, backend):
    from emailrouter.registry import load_model

    s = scratch_settings(store.root, model_name="readonly", serve_backend=backend)
    for uri in store.uris:
        before = tree(store.root)
        m = load_model(uri, s)
        assert changes(before, tree(store.root)) == [], f"loading {uri} wrote into the store or the model folder"
        assert m.router.route([MAIL])[0]["queue"] in store.labels
        assert m.router.backend == ("onnx" if backend == "auto" else "torch")
        if uri.startswith("models:/"):  # a local store's version is read where it lies, not copied
            assert Path(m.router.model_dir).is_relative_to(store.runs), m.router.model_dir
            assert (m.name, m.version) == ("readonly", "1")


def as_unprivileged() -> list[str]:
    "The prefix that runs a command as user nobody (none when the tests do not run as root); skips if none can."
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv"):
        prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    elif shutil.which("runuser"):
        prefix = ["runuser", "-m", "-u", "nobody", "--"]
    else:
        pytest.skip("needs setpriv or runuser to run the server as an unprivileged user")
    p = subprocess.run(prefix + [sys.executable, "-c", "import emailrouter.registry"], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"user nobody cannot run this Python and its packages ({sys.executable}): {p.stderr[-300:]}")
    return prefix


@pytest.fixture
def unprivileged(store):
    "(command prefix, environment): user nobody, with a home, caches and outputs of its own, and the read-only store."
    prefix = as_unprivileged()
    home = Path(tempfile.mkdtemp(prefix="er-nobody-"))
    home.chmod(0o777)
    env = {
        "HOME": str(home),
        "TMPDIR": str(home),
        "XDG_CACHE_HOME": str(home / "cache"),
        "HF_HOME": str(home / "hf"),
        "EMAILROUTER_MLFLOW_TRACKING_URI": store.tracking_uri,
        "EMAILROUTER_OUTPUT_DIR": str(home / "out"),
        "EMAILROUTER_MODEL_NAME": "readonly",
        "EMAILROUTER_PROGRESS": "false",
    }
    yield prefix, env, home
    shutil.rmtree(home, ignore_errors=True)


def test_unprivileged_user_loads_every_uri(store, unprivileged):
    prefix, env, home = unprivileged
    code = (
        "import json, sys\nfrom emailrouter.registry import load_model\n"
        "print(json.dumps([load_model(u).version for u in sys.argv[1:]]))"
    )
    before = tree(store.root)
    p = subprocess.run(
        prefix + [sys.executable, "-c", code, *store.uris],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=home,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads(p.stdout.strip().splitlines()[-1]) == ["1", "1", None, None]
    assert changes(before, tree(store.root)) == []


def test_unprivileged_server_starts_from_read_only_store(store, unprivileged):
    prefix, env, home = unprivileged
    before = tree(store.root)
    cmd = prefix + [sys.executable, "-m", "uvicorn", "emailrouter.serve:app", "--port", "{port}"]
    with serve_process(cmd, env=env, cwd=home, timeout=240) as api:
        model = httpx.get(api + "/model", timeout=30).json()
        assert (model["name"], model["version"], model["alias"]) == ("readonly", "1", "champion")
        r = httpx.post(api + "/predict", json=MAIL, timeout=30)
        assert r.status_code == 200 and r.json()["queue"] in store.labels
    assert changes(before, tree(store.root)) == []
