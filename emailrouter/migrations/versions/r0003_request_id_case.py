"Request ids compare by their bytes on MariaDB and MySQL too: `Mail-1` and `mail-1` are two answers, not a duplicate."
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision, down_revision, branch_labels, depends_on = "0003", "0002", None, None
_TABLES = ("er_predictions", "er_feedback", "er_shadow")


def upgrade():
    if op.get_bind().dialect.name not in ("mysql", "mariadb"): return   # SQLite and PostgreSQL compare bytes already
    for table in _TABLES:
        op.alter_column(table, "request_id", type_=mysql.VARCHAR(80, collation="utf8mb4_bin"), existing_nullable=False)


def downgrade():
    if op.get_bind().dialect.name not in ("mysql", "mariadb"): return
    for table in _TABLES:
        op.alter_column(table, "request_id", type_=sa.String(80), existing_nullable=False)
