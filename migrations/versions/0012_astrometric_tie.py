"""Concordance: the cross-image astrometric tie of each solution (a shift in mas).

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('astrometric_solution',
                  sa.Column('tie_dra_mas', sa.Float(), nullable=True,
                            comment='Shift in RA cos(Dec) added by the cross-image tie to every sky position, mas'),
                  schema='jsp')
    op.add_column('astrometric_solution',
                  sa.Column('tie_ddec_mas', sa.Float(), nullable=True,
                            comment='Shift in Dec added by the cross-image tie to every sky position, mas'),
                  schema='jsp')
    op.add_column('astrometric_solution',
                  sa.Column('tie_err_mas', sa.Float(), nullable=True,
                            comment='Uncertainty of the tie shift per axis, mas'),
                  schema='jsp')


def downgrade() -> None:
    op.drop_column('astrometric_solution', 'tie_err_mas', schema='jsp')
    op.drop_column('astrometric_solution', 'tie_ddec_mas', schema='jsp')
    op.drop_column('astrometric_solution', 'tie_dra_mas', schema='jsp')
