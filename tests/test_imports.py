"""Real-world imports: hand-made Danish exports as Excel and Windows write them, and every way they go wrong."""

import logging

import pandas as pd
import pytest

from emailrouter.core import load_settings
from emailrouter.data import DataError, load_emails
from emailrouter.sources import read_source

QUEUES = ["regning", "flytning", "teknisk_bredbaand"]
BODIES = {
    "regning": "Min regning på {i}99 kr er for høj, kan I se på den?",
    "flytning": "Jeg flytter til Århus og vil tage mit bredbånd med ({i}).",
    "teknisk_bredbaand": "Routeren blinker rødt, og nettet er væk igen i dag ({i}).",
}


def danish_rows(n_per=12, date=lambda i: f"{1 + i % 28:02d}-{1 + i % 12:02d}-2025 {8 + i % 9:02d}:{i % 60:02d}"):
    "Rows as a Danish export names them: emne, tekst, kø, modtaget; dates day first."
    rows = []
    for q in QUEUES:
        for i in range(n_per):
            k = len(rows)
            rows.append(
                {
                    "id": f"m{k}",
                    "emne": f"Spørgsmål om {q} æøå",
                    "tekst": BODIES[q].format(i=i),
                    "kø": q,
                    "modtaget": date(k),
                }
            )
    return pd.DataFrame(rows)


def test_semicolon_cp1252_csv_as_excel_writes_it(tmp_path, caplog):
    "Excel's Danish default: ';' separator, Windows-1252 bytes, Danish column names, dd-mm-yyyy dates."
    df = danish_rows()
    path = tmp_path / "mails.csv"
    df.to_csv(path, sep=";", index=False, encoding="cp1252")
    assert b"\xe6\xf8\xe5" in path.read_bytes()  # æøå as single Windows-1252 bytes
    with caplog.at_level(logging.WARNING, logger="emailrouter"):
        data = load_emails(str(path))
    assert data.report.rows_out == len(df) and data.unique_tags == sorted(QUEUES)
    assert "cp1252" in caplog.text or "latin" in caplog.text.lower()
    notes = " ".join(data.report.notes)
    assert "'kø'" in notes and "'tekst'" in notes and "'modtaget'" in notes
    train = data.frame("train")
    assert train["subject"].str.contains("æøå").all() and not train["text"].str.contains("\ufffd").any()
    assert data.split_kind == "time" and train["timestamp"].max() <= data.frame("test")["timestamp"].min()


def test_dayfirst_dates_are_not_read_month_first(tmp_path):
    "A day above 12 proves day first; every row keeps its date and the time split orders them right."
    df = danish_rows(date=lambda k: f"{13 + k % 15:02d}-{1 + k // 3 % 12:02d}-2025 10:00")
    df.to_csv(tmp_path / "d.csv", sep=";", index=False)
    data = load_emails(str(tmp_path / "d.csv"))
    assert "bad timestamp" not in data.report.dropped
    ts = pd.concat(data.frame(k) for k in data.splits)["timestamp"]
    assert (ts.dt.day >= 13).all() and ts.dt.month.max() <= 12


def test_ambiguous_dates_are_read_day_first_and_said(tmp_path):
    df = danish_rows(date=lambda k: f"{1 + k % 12:02d}-{1 + k % 12:02d}-2025")
    df.to_csv(tmp_path / "a.csv", sep=";", index=False)
    data = load_emails(str(tmp_path / "a.csv"))
    assert any("day first" in n for n in data.report.notes)
    data = load_emails(str(tmp_path / "a.csv"), settings=load_settings(dayfirst=False))
    assert not any("day first" in n for n in data.report.notes)


def test_mixed_date_formats_are_refused_not_reparsed(tmp_path):
    df = danish_rows(n_per=30, date=lambda k: "2025-03-04 10:00" if k % 2 else "04-03-2025 10:00")
    df.to_csv(tmp_path / "m.csv", sep=";", index=False)
    with pytest.raises(DataError, match="column 'modtaget' mixes date formats"):
        load_emails(str(tmp_path / "m.csv"))
    # an explicit format reads one kind; the other becomes a reported "bad timestamp", above the drop limit here
    with pytest.raises(DataError, match="dropped 50% of the rows"):
        load_emails(str(tmp_path / "m.csv"), settings=load_settings(date_format="%d-%m-%Y %H:%M"))
    data = load_emails(
        str(tmp_path / "m.csv"), settings=load_settings(date_format="%d-%m-%Y %H:%M", max_drop_share=0.6)
    )
    assert data.report.dropped["bad timestamp"] == len(df) // 2


def test_xlsx_with_date_cells(tmp_path):
    df = danish_rows()
    df["modtaget"] = pd.date_range("2025-01-01", periods=len(df), freq="D")
    df.to_excel(tmp_path / "mails.xlsx", index=False, sheet_name="Mails")
    data = load_emails(str(tmp_path / "mails.xlsx"))
    assert data.report.rows_out == len(df) and data.split_kind == "time"
    assert data.frame("test")["timestamp"].min() >= pd.Timestamp("2025-01-29")
    with pytest.raises(DataError, match="Ark2"):
        read_source(str(tmp_path / "mails.xlsx"), settings=load_settings(excel_sheet="Ark2"))


def test_separator_override_and_tab(tmp_path, monkeypatch):
    df = danish_rows()
    df.to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    assert load_emails(str(tmp_path / "t.tsv")).report.rows_out == len(df)
    df.to_csv(tmp_path / "p.csv", sep="|", index=False)
    monkeypatch.setenv("EMAILROUTER_CSV_SEPARATOR", "|")
    assert len(read_source(str(tmp_path / "p.csv")).columns) == len(df.columns)


def test_undecodable_file_names_file_and_setting(tmp_path):
    (tmp_path / "x.csv").write_bytes(bytes(range(128, 256)) * 50)
    with pytest.raises(DataError) as e:
        read_source(str(tmp_path / "x.csv"))
    msg = str(e.value)
    assert "x.csv" in msg and "EMAILROUTER_ENCODING" in msg
    danish_rows().to_csv(tmp_path / "w.csv", sep=";", index=False, encoding="cp1252")
    with pytest.raises(DataError, match="w.csv is not utf-8: byte 0x"):
        read_source(str(tmp_path / "w.csv"), settings=load_settings(encoding="utf-8"))
    assert read_source(str(tmp_path / "w.csv"), settings=load_settings(encoding="cp1252"))["kø"].iloc[0] == "regning"


def test_many_drops_warn_and_too_many_refuse(tmp_path, caplog):
    df = danish_rows(n_per=20)
    df.loc[df.index[:6], "tekst"] = ""  # 6 of 60 empty: over 5%, a warning naming the reason
    df.loc[df.index[:6], "emne"] = ""
    df.to_csv(tmp_path / "w.csv", sep=";", index=False)
    with caplog.at_level(logging.WARNING, logger="emailrouter"):
        load_emails(str(tmp_path / "w.csv"))
    assert "dropped 10% of 60 rows (empty text 6)" in caplog.text
    df.loc[df.index[:25], "kø"] = ""
    df.to_csv(tmp_path / "w.csv", sep=";", index=False)
    with pytest.raises(DataError, match="EMAILROUTER_MAX_DROP_SHARE"):
        load_emails(str(tmp_path / "w.csv"))


def test_column_hint_for_a_misspelt_name(tmp_path):
    pd.DataFrame({"tekst": ["a"] * 3, "koe": ["x"] * 3}).to_csv(tmp_path / "h.csv", index=False)
    with pytest.raises(DataError, match="missing required column"):
        load_emails(str(tmp_path / "h.csv"), settings=load_settings(label_column="kø"))


def test_a_few_bad_bytes_in_a_utf8_file_drop_only_those_rows(tmp_path):
    """A UTF-8 export with one row from a Latin-1 system: the file stays UTF-8 (no mojibake); that row is dropped and
    reported."""
    df = danish_rows()
    df.to_csv(tmp_path / "u.csv", sep=";", index=False)
    with open(tmp_path / "u.csv", "ab") as f:
        f.write("m99;Fjernsyn;Fjernbetjeningen er gået i stykker;regning;01-02-2025 10:00\n".encode("latin-1"))
    data = load_emails(str(tmp_path / "u.csv"))
    assert data.report.dropped == {"non-UTF-8 bytes": 1}
    assert data.frame("train")["subject"].str.contains("æøå").all()
