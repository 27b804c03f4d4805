"""Jobs tier: a step's summary on its job row; the cross-image photometric tie of each zero point.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('tile_job', sa.Column('result', postgresql.JSONB(astext_type=sa.Text()), nullable=True,
                                        comment="The step's summary of its last success (counts, rms, QA files)"),
                  schema='jsp')
    op.add_column('photometric_solution',
                  sa.Column('tie_offset_mag', sa.Float(), nullable=True,
                            comment='Offset added by the cross-image tie (tied zero point = zeropoint_mag + this)'),
                  schema='jsp')
    op.add_column('photometric_solution',
                  sa.Column('tie_err_mag', sa.Float(), nullable=True, comment='Uncertainty of the tie offset, mag'),
                  schema='jsp')


def downgrade() -> None:
    op.drop_column('photometric_solution', 'tie_err_mag', schema='jsp')
    op.drop_column('photometric_solution', 'tie_offset_mag', schema='jsp')
    op.drop_column('tile_job', 'result', schema='jsp')
