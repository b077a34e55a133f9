"""Each answer carries its latest correction (`feedback_id`, `feedback_queue`), kept by the database's triggers as
feedback arrives (or when an answer is logged after its feedback): production scores read one table, not a join that
groups every correction.

Triggers, not application code, so that every writer (the API, `feedback-import`, a bulk load, a hand-written INSERT)
keeps the columns right. On MariaDB/MySQL with binary logging, creating triggers needs the TRIGGER privilege and, for a
user without SUPER, `log_bin_trust_function_creators=1`."""
import sqlalchemy as sa
from alembic import op

revision, down_revision, branch_labels, depends_on = "0005", "0004", None, None

_ON_FEEDBACK = """UPDATE er_predictions SET feedback_queue = NEW.true_queue, feedback_id = NEW.id
 WHERE request_id = NEW.request_id AND (feedback_id IS NULL OR feedback_id < NEW.id)"""
_LATEST_ID = "(SELECT max(f.id) FROM er_feedback f WHERE f.request_id = NEW.request_id)"
_LATEST_QUEUE = f"(SELECT f.true_queue FROM er_feedback f WHERE f.id = {_LATEST_ID})"

TRIGGERS = {
    "postgresql": [
        f"""CREATE OR REPLACE FUNCTION er_feedback_latest() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN {_ON_FEEDBACK}; RETURN NULL; END $$""",
        """CREATE TRIGGER er_feedback_latest AFTER INSERT ON er_feedback
 FOR EACH ROW EXECUTE FUNCTION er_feedback_latest()""",
        f"""CREATE OR REPLACE FUNCTION er_prediction_feedback() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.feedback_id := {_LATEST_ID}; NEW.feedback_queue := {_LATEST_QUEUE}; RETURN NEW; END $$""",
        """CREATE TRIGGER er_prediction_feedback BEFORE INSERT ON er_predictions
 FOR EACH ROW EXECUTE FUNCTION er_prediction_feedback()""",
    ],
    "sqlite": [
        f"CREATE TRIGGER er_feedback_latest AFTER INSERT ON er_feedback FOR EACH ROW BEGIN {_ON_FEEDBACK}; END",
        f"""CREATE TRIGGER er_prediction_feedback AFTER INSERT ON er_predictions FOR EACH ROW
 WHEN EXISTS (SELECT 1 FROM er_feedback f WHERE f.request_id = NEW.request_id)
 BEGIN UPDATE er_predictions SET feedback_id = {_LATEST_ID}, feedback_queue = {_LATEST_QUEUE} WHERE id = NEW.id; END""",
    ],
    "mysql": [
        f"CREATE TRIGGER er_feedback_latest AFTER INSERT ON er_feedback FOR EACH ROW {_ON_FEEDBACK}",
        f"""CREATE TRIGGER er_prediction_feedback BEFORE INSERT ON er_predictions FOR EACH ROW
 SET NEW.feedback_id = {_LATEST_ID}, NEW.feedback_queue = {_LATEST_QUEUE}""",
    ],
}


def _dialect() -> str:
    name = op.get_bind().dialect.name
    return "mysql" if name == "mariadb" else name


def upgrade():
    op.add_column("er_predictions", sa.Column("feedback_id", sa.Integer, nullable=True))
    op.add_column("er_predictions", sa.Column("feedback_queue", sa.String(100), nullable=True))
    # the answers logged so far: their latest correction
    op.execute(
        "UPDATE er_predictions SET feedback_id = "
        "(SELECT max(f.id) FROM er_feedback f WHERE f.request_id = er_predictions.request_id)"
    )
    op.execute(
        "UPDATE er_predictions SET feedback_queue = "
        "(SELECT f.true_queue FROM er_feedback f WHERE f.id = er_predictions.feedback_id) WHERE feedback_id IS NOT NULL"
    )
    for statement in TRIGGERS[_dialect()]:
        op.execute(statement)


def downgrade():
    for name, table in (("er_feedback_latest", "er_feedback"), ("er_prediction_feedback", "er_predictions")):
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if _dialect() == "postgresql" else ""))
        if _dialect() == "postgresql":
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    with op.batch_alter_table("er_predictions") as b:
        b.drop_column("feedback_queue")
        b.drop_column("feedback_id")
