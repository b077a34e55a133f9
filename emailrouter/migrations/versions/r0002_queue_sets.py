"Queue sets: each prediction points at the queues of the model that answered it, so feedback is checked against those."
import sqlalchemy as sa
from alembic import op

revision, down_revision, branch_labels, depends_on = "0002", "0001", None, None


def upgrade():
    op.create_table(
        "er_queue_sets",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("queues", sa.Text, nullable=False))
    with op.batch_alter_table("er_predictions") as batch:
        batch.add_column(sa.Column("queue_set", sa.String(16)))


def downgrade():
    with op.batch_alter_table("er_predictions") as batch:
        batch.drop_column("queue_set")
    op.drop_table("er_queue_sets")
