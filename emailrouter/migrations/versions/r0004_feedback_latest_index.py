"An index on agents' feedback by (request_id, id): the latest correction of each answer is read from the index alone."
from alembic import op

revision, down_revision, branch_labels, depends_on = "0004", "0003", None, None


def upgrade():
    op.create_index("ix_er_feedback_request_id_id", "er_feedback", ["request_id", "id"])


def downgrade():
    op.drop_index("ix_er_feedback_request_id_id", table_name="er_feedback")
