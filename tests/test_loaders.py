"""File loaders and every bad-input case of the data layer."""

import json

import pandas as pd
import pytest

from emailrouter.core import load_settings
from emailrouter.data import DataError, load_emails, validate_emails
from emailrouter.sources import read_source


def _frame(n_per=12, queues=("regning", "tv", "mobil")):
    rows = [
        {"id": f"{q}-{i}", "subject": f"Emne {q}", "body": f"Hej, mail nummer {i} om {q}. Kan I hjælpe?", "queue": q}
        for q in queues
        for i in range(n_per)
    ]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".jsonl", ".json"])
def test_every_file_format(tmp_path, suffix):
    df, path = _frame(), tmp_path / f"mails{suffix}"
    if suffix == ".csv":
        df.to_csv(path, index=False)
    elif suffix == ".tsv":
        df.to_csv(path, sep="\t", index=False)
    elif suffix == ".parquet":
        df.to_parquet(path)
    elif suffix == ".jsonl":
        df.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        df.to_json(path, orient="records", force_ascii=False)
    data = load_emails(str(path))
    assert data.split_kind == "stratified" and data.unique_tags == ["mobil", "regning", "tv"]
    assert sum(len(v) for v in data.splits.values()) == 36


def test_custom_column_names(tmp_path):
    df = _frame().rename(columns={"body": "text", "queue": "category"}).drop(columns=["subject", "id"])
    df.to_csv(tmp_path / "b77.csv", index=False)
    s = load_settings(text_column="text", label_column="category")
    data = load_emails(str(tmp_path / "b77.csv"), settings=s)
    assert any("no subject column" in n for n in data.report.notes)
    assert data.frame("train").id.str.startswith("row-").all()


def test_missing_columns_named(tmp_path):
    _frame().drop(columns=["queue"]).to_csv(tmp_path / "x.csv", index=False)
    with pytest.raises(DataError, match=r"missing required column\(s\) \['queue'\].*EMAILROUTER_LABEL_COLUMN"):
        load_emails(str(tmp_path / "x.csv"))


def test_non_utf8_csv_bytes_reported(tmp_path):
    path = tmp_path / "latin1.csv"
    _frame().to_csv(path, index=False)
    with open(path, "ab") as f:  # one row written by a Latin-1 exporter
        f.write("tv-99,Fjernsyn,Fjernbetjeningen er g\xe5et i stykker,tv\n".encode("latin-1"))
    data = load_emails(str(path))
    assert data.report.dropped == {"non-UTF-8 bytes": 1}
    assert data.report.examples["non-UTF-8 bytes"] == ["tv-99"]


def test_non_utf8_jsonl_bytes_reported(tmp_path):
    path = tmp_path / "x.jsonl"
    _frame().to_json(path, orient="records", lines=True, force_ascii=False)
    with open(path, "ab") as f:
        f.write(b'{"id": "bad", "subject": "x", "body": "\xff\xfe broken", "queue": "tv"}\n')
    assert load_emails(str(path)).report.dropped == {"non-UTF-8 bytes": 1}


def test_each_drop_reason_and_nothing_silent():
    df = _frame()
    extra = pd.DataFrame(
        [
            {"id": "n1", "subject": "Hej", "body": "Uden kø", "queue": None},
            {"id": "n2", "subject": "Hej", "body": "Blank kø", "queue": "   "},
            {"id": "e1", "subject": " ", "body": "\n\t ", "queue": "tv"},
            {"id": "l1", "subject": "Log", "body": "A" * 5000, "queue": "tv"},
            {"id": "h1", "subject": "", "body": "<html><body><img src='cid:x'></body></html>", "queue": "tv"},
            {"id": "q1", "subject": "", "body": "> kun citeret tekst\n> fra før", "queue": "tv"},
            {"id": "d1", "subject": "Emne tv", "body": "Hej, mail nummer 0 om tv. Kan I hjælpe?", "queue": "tv"},
            {
                "id": "c1",
                "subject": "Emne mobil",
                "body": "Hej, mail nummer 1 om mobil. Kan I hjælpe?",
                "queue": "regning",
            },
            {"id": "r1", "subject": "Sjælden", "body": "Kun én af denne slags", "queue": "sjælden"},
        ]
    )
    s = load_settings(max_body_chars=1000, min_examples_per_label=5)
    kept, rep = validate_emails(pd.concat([df, extra], ignore_index=True), s)
    assert rep.dropped == {
        "missing label": 2,
        "empty text": 1,
        "body too long": 1,
        "empty after cleaning": 2,
        "conflicting duplicate": 2,
        "exact duplicate": 1,
        "rare label (<5)": 1,
    }
    assert rep.rows_in == rep.rows_out + sum(rep.dropped.values())
    assert set(rep.examples["conflicting duplicate"]) == {"mobil-1", "c1"}
    assert "d1" in rep.examples["exact duplicate"] and "tv-0" in set(kept.id)
    assert "sjælden (1)" in " ".join(rep.notes)
    assert "missing label" in str(rep) and "n1" in str(rep)


def test_bad_timestamps_dropped_and_time_split():
    df = _frame(n_per=20)
    df["received_at"] = pd.date_range("2025-01-01", periods=len(df), freq="h").astype(str)
    df.loc[3, "received_at"] = "not a date"
    kept, rep = validate_emails(df, load_settings())
    assert rep.dropped == {"bad timestamp": 1}
    assert kept.timestamp.notna().all()


def test_everything_dropped_is_an_error():
    df = pd.DataFrame({"subject": ["", ""], "body": ["", " "], "queue": ["a", "b"]})
    with pytest.raises(DataError, match="no usable rows left"):
        validate_emails(df, load_settings())


def test_single_label_is_an_error():
    df = _frame(queues=("tv",))
    with pytest.raises(DataError, match="at least 2 labels"):
        validate_emails(df, load_settings())


def test_too_small_to_stratify(tmp_path):
    _frame(n_per=4, queues=tuple("abcdefghij")).to_csv(tmp_path / "x.csv", index=False)
    with pytest.raises(DataError, match="stratified split"):
        load_emails(str(tmp_path / "x.csv"), settings=load_settings(min_examples_per_label=3))


@pytest.mark.parametrize("content,match", [(b"\x00\x01garbage{", "could not parse"), (b"", "could not parse")])
def test_corrupt_files(tmp_path, content, match):
    (tmp_path / "x.parquet").write_bytes(content)
    with pytest.raises(DataError, match=match):
        read_source(str(tmp_path / "x.parquet"))


def test_demo_source_and_drift_report():
    data = load_emails("demo:2000")
    assert data.split_kind == "time"
    assert data.report.dropped.get("exact duplicate", 0) > 0
    assert len(data.unique_tags) == 12
    assert json.dumps(data.report.to_dict())  # serialisable for tracking


def test_demo_size_must_be_a_number():
    with pytest.raises(DataError, match="whole number"):
        read_source("demo:lots")
