"""`emailrouter score-archive`, the batch scorer, as a user runs it: a folder of Parquet files of demo mails through a
local Ray instance, and the bad input it must refuse without touching what is already there."""

import pandas as pd
import pytest

from emailrouter.testing import run_cli


def cli(*args, cwd):
    env = {"EMAILROUTER_OUTPUT_DIR": str(cwd), "EMAILROUTER_PROGRESS": "false"}
    return run_cli("--log-level", "WARNING", *args, env=env, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    from emailrouter.demo import make_demo_corpus

    root = tmp_path_factory.mktemp("archive")
    mails = make_demo_corpus(3000, seed=7)[["id", "subject", "body"]]
    for i in range(4):
        mails.iloc[i * 750 : (i + 1) * 750].to_parquet(root / f"part-{i}.parquet", index=False)
    return root, mails


def test_ray_scores_every_mail_once(archive, tiny_model, tmp_path):
    root, mails = archive
    p = cli(
        "score-archive",
        str(root),
        "--out",
        str(tmp_path / "answers"),
        "--model",
        str(tiny_model.model_dir),
        "--actors",
        "2",
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert "routed 3000 mails" in p.stdout and "ray, 2 workers" in p.stdout
    got = pd.read_parquet(tmp_path / "answers")
    assert sorted(got["id"]) == sorted(mails["id"].astype(str))
    assert got.loc[got["queue"] != "", "queue"].isin(tiny_model.data.unique_tags).all()
    assert not {"subject", "body"} & set(got.columns)
    # a second run into the same folder is refused, and the answers stay
    again = cli(
        "score-archive",
        str(root),
        "--out",
        str(tmp_path / "answers"),
        "--model",
        str(tiny_model.model_dir),
        cwd=tmp_path,
    )
    assert again.returncode == 2 and "is not empty" in again.stderr and "Traceback" not in again.stderr
    assert len(pd.read_parquet(tmp_path / "answers")) == 3000


def test_bad_archives_are_named(tiny_model, tmp_path):
    (tmp_path / "notes.txt").write_text("hej")
    for source, message in (
        (tmp_path / "notes.txt", "use Parquet, CSV or JSON Lines"),
        (tmp_path / "missing", "no archive at"),
    ):
        p = cli(
            "score-archive",
            str(source),
            "--out",
            str(tmp_path / "o"),
            "--model",
            str(tiny_model.model_dir),
            "--engine",
            "local",
            cwd=tmp_path,
        )
        assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr
    p = cli(
        "score-archive",
        str(tmp_path / "notes.txt"),
        "--out",
        str(tmp_path / "o"),
        "--model",
        str(tmp_path / "nope"),
        cwd=tmp_path,
    )
    assert p.returncode == 2
