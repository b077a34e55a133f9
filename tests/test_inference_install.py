"""The inference install, as the serving image has it: the package without extras in a fresh virtual environment.

It must serve a registered model (and a mounted model folder) from the ONNX export with no PyTorch, Trainer, Optuna,
Captum or Dash installed, and refuse the commands of a missing extra with the extra to install. The environment is
built once per session from this checkout with pip (PyPI or its mirror), which takes a minute or two.
"""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from emailrouter.testing import serve_process

REPO = Path(__file__).resolve().parent.parent
MAIL = {"subject": "Flytning", "body": "Hej, jeg flytter til Vestergade 3, 8000 Aarhus C den 1. maj. Mvh Anna"}
log = logging.getLogger(__name__)


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) / 2**20


def build_inference_env(root: Path) -> Path:
    "A fresh venv in `root` with `pip install <checkout>` and nothing else; its bin folder (or the pip error)."
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    pip = subprocess.run(
        [str(root / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(REPO)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if pip.returncode != 0:
        raise RuntimeError(f"the inference install failed:\n{pip.stderr[-3000:]}")
    return root / "bin"


@pytest.fixture(scope="session")
def inference_env(tmp_path_factory):
    """The inference environment's bin folder: built while the other tests ran where conftest started it (a minute of
    pip, mostly waiting on the network and disk), else now."""
    import conftest

    started = conftest.BACKGROUND.get("inference_env")
    try:
        bin_dir = started.result() if started else build_inference_env(tmp_path_factory.mktemp("inference-venv"))
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:  # pip failed, or venv, or a timeout
        pytest.fail(f"the inference environment could not be built: {e}")
    log.info(
        "inference install: %.0f MiB (this environment, with every extra: %.0f MiB)",
        _size_mb(bin_dir.parent),
        _size_mb(Path(sys.prefix)),
    )
    return bin_dir


def run(bin_dir: Path, *args, cwd, env=None):
    return subprocess.run(
        [str(bin_dir / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def test_installs_no_training_stack(inference_env, tmp_path):
    code = (
        "import importlib.util, emailrouter.serve, emailrouter.cli\n"
        "print(sorted(m for m in ('torch', 'optuna', 'captum', 'dash', 'datasets', 'accelerate', 'evaluate')"
        " if importlib.util.find_spec(m)))"
    )
    p = run(inference_env, "python", "-c", code, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"


def test_serves_registered_model_without_torch(inference_env, tiny_model, tmp_path):
    """Register in this (full) environment, serve from the inference one: models:/name@champion from the same MLflow
    store."""
    from emailrouter.core import load_settings
    from emailrouter.tracking import log_training, promote

    s = load_settings(output_dir=tmp_path, model_name="slim")
    log_training(tiny_model.model_dir, tiny_model.data, {}, {"test_macro_f1": 0.5}, settings=s)
    promote(s)
    env = {"EMAILROUTER_OUTPUT_DIR": str(tmp_path), "EMAILROUTER_MODEL_NAME": "slim", "EMAILROUTER_PROGRESS": "false"}
    with serve_process(
        [str(inference_env / "uvicorn"), "emailrouter.serve:app", "--port", "{port}"], env=env, cwd=tmp_path
    ) as url:
        model = httpx.get(url + "/model").json()
        # without PyTorch: the fastest of the ONNX variants the export gate passed, by the export's own timings
        parity = json.loads((tiny_model.model_dir / "onnx" / "parity.json").read_text())
        onnx = {v: x for v, x in parity["speed"]["mails_per_second"].items() if not v.startswith("torch")}
        assert model["version"] == "1" and model["alias"] == "champion" and model["variant"] == max(onnx, key=onnx.get)
        r = httpx.post(url + "/predict", json=MAIL, timeout=30)
        assert r.status_code == 200 and r.json()["queue"] in tiny_model.data.unique_tags
        assert httpx.get(url + "/health").status_code == 200


def test_serves_mounted_folder(inference_env, tiny_model, tmp_path):
    "The image's other source: a model folder mounted into the container, named by EMAILROUTER_MODEL_URI."
    env = {"EMAILROUTER_OUTPUT_DIR": str(tmp_path), "EMAILROUTER_MODEL_URI": str(tiny_model.model_dir)}
    with serve_process(
        [str(inference_env / "uvicorn"), "emailrouter.serve:app", "--port", "{port}"], env=env, cwd=tmp_path
    ) as url:
        r = httpx.post(url + "/predict", json=MAIL, timeout=30)
        assert r.status_code == 200 and r.json()["queue"] in tiny_model.data.unique_tags


def test_folder_without_export_is_refused_with_reason(inference_env, tiny_model, tmp_path):
    import shutil

    from emailrouter.model import ONNX_DIR

    folder = tmp_path / "no-export"
    shutil.copytree(tiny_model.model_dir, folder, ignore=shutil.ignore_patterns(ONNX_DIR))
    env = {"EMAILROUTER_OUTPUT_DIR": str(tmp_path), "EMAILROUTER_MODEL_URI": str(folder)}
    p = run(inference_env, "uvicorn", "emailrouter.serve:app", "--port", "0", cwd=tmp_path, env=env)
    assert p.returncode != 0 and "PyTorch, the other backend, is not installed" in p.stderr
    assert "Traceback" not in p.stderr


@pytest.mark.parametrize(
    "command, extra", [(["train", "--demo"], "train"), (["tune", "demo:200"], "train"), (["dashboard"], "dashboard")]
)
def test_missing_extra_named(inference_env, tmp_path, command, extra):
    p = run(inference_env, "emailrouter", *command, cwd=tmp_path, env={"EMAILROUTER_OUTPUT_DIR": str(tmp_path)})
    assert p.returncode == 2, p.stderr
    assert f"pip install 'emailrouter[{extra}]'" in p.stderr and "Traceback" not in p.stderr
