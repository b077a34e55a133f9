"""The SQL loader against real MariaDB and PostgreSQL servers, and an SQLite file."""

import logging

import pandas as pd
import pytest
import sqlalchemy as sa

from emailrouter.core import load_settings
from emailrouter.data import DataError, load_emails
from emailrouter.sources import read_source

ROWS = pd.DataFrame(
    {
        "id": [f"m{i}" for i in range(60)],
        "subject": ["Regning", "Internet nede", "Flytning"] * 20,
        "body": [
            f"Min {w} nr. {i} har et problem, hjælp mig venligst"
            for i, w in zip(range(60), ["faktura", "router", "adresse"] * 20)
        ],
        "queue": ["regning", "teknisk", "flytning"] * 20,
        "received_at": pd.date_range("2025-01-01", periods=60, freq="D"),
    }
)


def _roundtrip(engine, table_name):
    ROWS.to_sql(table_name, engine, index=False)
    try:
        url = engine.url.render_as_string(hide_password=False)
        s = load_settings(min_examples_per_label=5)
        by_table = load_emails(url, query=table_name, settings=s)
        by_select = load_emails(url, query=f"SELECT * FROM {table_name} WHERE queue <> 'flytning'", settings=s)
    finally:
        with engine.begin() as c:
            c.execute(sa.text(f"DROP TABLE {table_name}"))
    return by_table, by_select


@pytest.mark.parametrize("which", ["mysql_engine", "postgres_engine"])
def test_sql_server_roundtrip(which, request, table_name):
    engine = request.getfixturevalue(which)
    by_table, by_select = _roundtrip(engine, table_name)
    assert by_table.report.rows_out == 60 and by_table.split_kind == "time"
    assert by_table.unique_tags == ["flytning", "regning", "teknisk"]
    test = by_table.frame("test")
    assert test.timestamp.min() > by_table.frame("train").timestamp.max()
    assert by_select.unique_tags == ["regning", "teknisk"] and by_select.report.rows_out == 40


def test_sqlite_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'mails.db'}"
    ROWS.to_sql("mails", sa.create_engine(url), index=False)
    data = load_emails(url, query="mails", settings=load_settings(min_examples_per_label=5))
    assert sum(len(v) for v in data.splits.values()) == 60


def test_missing_table_names_table_not_password(mysql_engine, caplog):
    url = mysql_engine.url.set(password="s3cr3t-pw").render_as_string(hide_password=False)
    with pytest.raises(DataError) as e:
        read_source(url, query="no_such_table_xyz")
    assert "s3cr3t-pw" not in str(e.value)
    assert "mysql+pymysql://root:***@" in str(e.value)


def test_wrong_password_is_not_echoed(postgres_engine):
    # a trust-auth server accepts any password: use an unknown database to provoke a server error instead
    url = postgres_engine.url.set(database="no_such_db_xyz", password="hunter2-secret").render_as_string(
        hide_password=False
    )
    with pytest.raises(DataError) as e:
        read_source(url, query="mails")
    assert "hunter2-secret" not in str(e.value) and "no_such_db_xyz" in str(e.value)


def test_password_from_settings_and_never_logged(mysql_engine, table_name, monkeypatch, caplog):
    ROWS.to_sql(table_name, mysql_engine, index=False)
    try:
        # the server accepts root without a password; a supplied one must still reach the driver, and never a log
        monkeypatch.setenv("EMAILROUTER_DB_PASSWORD", "pa55-word")
        url = mysql_engine.url.render_as_string(hide_password=False)
        with caplog.at_level(logging.DEBUG, logger="emailrouter"):
            with pytest.raises(DataError) as e:
                load_emails(url, query=table_name, settings=load_settings(min_examples_per_label=5))
        assert "Access denied" in str(e.value)  # the password was used ...
        assert "pa55-word" not in str(e.value) and "pa55-word" not in caplog.text  # ... and not shown
    finally:
        with mysql_engine.begin() as c:
            c.execute(sa.text(f"DROP TABLE {table_name}"))


def test_sql_needs_query():
    with pytest.raises(DataError, match="needs a table name or SELECT"):
        read_source("sqlite:///:memory:")


def test_unreachable_server_is_a_clear_error():
    with pytest.raises(DataError, match="could not read"):
        read_source("mysql+pymysql://root@127.0.0.1:1/test", query="mails")
