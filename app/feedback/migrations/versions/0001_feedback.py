"""The feedback table: one row per correction, unique by sha256 of upload and label.

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The labels as this revision knew them: a migration stays as it was written, whatever the
# code's labels become later.
LABELS = (*(str(digit) for digit in range(10)), "none")


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("image_sha256", sa.String(64), nullable=False),
        sa.Column("label", sa.String(4), nullable=False),
        sa.Column("image", sa.LargeBinary(), nullable=False),
        sa.Column("frame", sa.LargeBinary(), nullable=False),
        sa.Column("predicted", sa.String(4)),
        sa.Column("version", sa.String(64)),
        sa.Column("source", sa.String(64)),
        sa.Column("model_digit", sa.SmallInteger(), nullable=False),
        sa.Column("model_rejected", sa.Boolean(), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("model_sha256", sa.String(64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "label IN (" + ", ".join(f"'{label}'" for label in LABELS) + ")",
            name="label_known",
        ),
        sa.UniqueConstraint("sha256"),
    )
    op.create_index("ix_feedback_image_sha256", "feedback", ["image_sha256"])
    op.create_index("ix_feedback_model_version", "feedback", ["model_version"])


def downgrade() -> None:
    op.drop_table("feedback")
