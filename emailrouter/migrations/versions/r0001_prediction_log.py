"The prediction log: predictions, agents' feedback, a challenger's shadow answers."
import sqlalchemy as sa
from alembic import op

revision, down_revision, branch_labels, depends_on = "0001", None, None, None


def upgrade():
    op.create_table(
        "er_predictions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(80), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime, nullable=False, index=True),
        sa.Column("model_name", sa.String(200)),
        sa.Column("model_version", sa.String(40), index=True),
        sa.Column("queue", sa.String(100), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("route", sa.String(100), nullable=False),
        sa.Column("top_k", sa.Text, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("truncated", sa.Boolean),
        sa.Column("n_tokens", sa.Integer),
        sa.Column("n_chars", sa.Integer, nullable=False),
        sa.Column("language", sa.String(16)),
        sa.Column("text", sa.Text),
        sa.Column("text_sha256", sa.String(64), nullable=False))
    op.create_table(
        "er_feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(80), nullable=False, index=True),
        sa.Column("true_queue", sa.String(100), nullable=False),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False, index=True))
    op.create_table(
        "er_shadow",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(80), nullable=False, index=True),
        sa.Column("created_at", sa.DateTime, nullable=False, index=True),
        sa.Column("model_name", sa.String(200)),
        sa.Column("model_version", sa.String(40), index=True),
        sa.Column("queue", sa.String(100), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False))


def downgrade():
    for table in ("er_shadow", "er_feedback", "er_predictions"):
        op.drop_table(table)
