"""The demo inbox is the same for the same seed: in one process, and across processes whatever their string hashing."""

import hashlib
import os
import subprocess
import sys

CODE = (
    "import hashlib; from emailrouter.demo import make_demo_corpus; "
    "df = make_demo_corpus(800, seed=7); "
    "print(hashlib.sha256(df.drop(columns='received_at').to_csv().encode()).hexdigest())"
)


def test_same_inbox_in_every_process():
    digests = {
        subprocess.run(
            [sys.executable, "-c", CODE],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
        ).stdout.strip()
        for seed in (1, 2)
    }
    assert len(digests) == 1, digests


def test_another_seed_another_inbox():
    from emailrouter.demo import make_demo_corpus

    a, b = make_demo_corpus(200, seed=1), make_demo_corpus(200, seed=2)
    assert hashlib.sha256(a.body.str.cat().encode()).digest() != hashlib.sha256(b.body.str.cat().encode()).digest()


def test_queue_specs_parse_as_written():
    """Each queue of the phrase tables has a display name, a weight and neighbours, and nothing YAML made up (a comma
    in an unquoted flow mapping starts a new key)."""
    from importlib import resources

    import yaml

    spec = yaml.safe_load((resources.files("emailrouter") / "demo_inbox.yaml").read_text(encoding="utf-8"))["queues"]
    for queue, s in spec.items():
        assert set(s) == {"name", "weight", "neighbours"} and isinstance(s["name"], str), (queue, s)
    assert spec["ingen_handling"]["name"] == "Ingen handling (tak, autosvar, spam)"
