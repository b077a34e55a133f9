"""Settings from the environment and .env: errors name the variable, secrets stay secret."""

import pytest

from emailrouter.core import SettingsError, load_settings


def test_dotenv_file_is_read(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("EMAILROUTER_MAX_LENGTH=64\nEMAILROUTER_EXPERIMENT_NAME=routing-dk\n")
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert (s.max_length, s.experiment_name) == (64, "routing-dk")


def test_environment_beats_dotenv(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("EMAILROUTER_SEED=1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EMAILROUTER_SEED", "7")
    assert load_settings().seed == 7


@pytest.mark.parametrize(
    "var,value",
    [
        ("EMAILROUTER_MAX_LENGTH", "8"),
        ("EMAILROUTER_N_TRIALS", "0"),
        ("EMAILROUTER_TEST_SIZE", "-1"),
        ("EMAILROUTER_LOG_LEVEL", "chatty"),
        ("N_TRIALS", "many"),
        ("EMAILROUTER_MIN_EXAMPLES_PER_LABEL", "1"),
    ],
)
def test_invalid_values_name_the_variable(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as e:
        load_settings()
    assert var in str(e.value) and "Traceback" not in str(e.value)


def test_secret_values_never_shown(monkeypatch, caplog):
    monkeypatch.setenv("EMAILROUTER_MLFLOW_TRACKING_PASSWORD", "mlflow-pw-123")
    monkeypatch.setenv("EMAILROUTER_DB_PASSWORD", "db-pw-456")
    monkeypatch.setenv("EMAILROUTER_MLFLOW_TRACKING_URI", "https://alice:uri-pw-789@mlflow.example.com")
    s = load_settings()
    shown = repr(s) + str(s) + str(s.describe())
    for secret in ("mlflow-pw-123", "db-pw-456", "uri-pw-789"):
        assert secret not in shown
    assert s.mlflow_tracking_password.get_secret_value() == "mlflow-pw-123"


def test_invalid_secret_is_not_echoed(monkeypatch):
    with pytest.raises(SettingsError) as e:
        load_settings(db_password=["not", "a", "string", "pw-999"])
    assert "pw-999" not in str(e.value)


def test_default_tracking_uri_is_embedded_sqlite(tmp_path, monkeypatch):
    monkeypatch.setenv("EMAILROUTER_OUTPUT_DIR", str(tmp_path / "runs"))
    assert load_settings().mlflow_tracking_uri == f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
