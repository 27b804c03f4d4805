"""Per-image solutions: astrometric, photometric, PSF model (per release).

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('astrometric_solution',
        sa.Column('release_id', sa.Integer(), nullable=False),
        sa.Column('image_id', sa.BigInteger(), nullable=False),
        sa.Column('model', sa.Text(), nullable=False, comment='e.g. affine, poly3'),
        sa.Column('params', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('wcs_header', sa.Text(), nullable=False, comment='Corrected FITS WCS'),
        sa.Column('n_stars', sa.Integer(), nullable=False),
        sa.Column('rms_mas', sa.Float(), nullable=False, comment='Residual rms of matched stars, mas'),
        sa.Column('sigma_mas', sa.Float(), nullable=False, comment='Estimated position uncertainty, mas'),
        sa.Column('flags', sa.Integer(), server_default='0', nullable=False),
        sa.ForeignKeyConstraint(['image_id'], ['jsp.image.image_id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['release_id'], ['jsp.release.release_id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('release_id', 'image_id'),
        schema='jsp'
    )
    op.create_table('photometric_solution',
        sa.Column('release_id', sa.Integer(), nullable=False),
        sa.Column('image_id', sa.BigInteger(), nullable=False),
        sa.Column('zeropoint_mag', sa.Float(), nullable=False, comment='AB mag giving 1 image count, per image'),
        sa.Column('zeropoint_err_mag', sa.Float(), nullable=False),
        sa.Column('colour_term', sa.Float(), nullable=True),
        sa.Column('colour_ref', sa.Text(), nullable=True, comment='Colour the term multiplies, e.g. bp-rp'),
        sa.Column('n_stars', sa.Integer(), nullable=False),
        sa.Column('flags', sa.Integer(), server_default='0', nullable=False),
        sa.ForeignKeyConstraint(['image_id'], ['jsp.image.image_id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['release_id'], ['jsp.release.release_id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('release_id', 'image_id'),
        schema='jsp'
    )
    op.create_table('psf_model',
        sa.Column('release_id', sa.Integer(), nullable=False),
        sa.Column('image_id', sa.BigInteger(), nullable=False),
        sa.Column('model_kind', sa.Text(), nullable=False, comment='e.g. galsim-moffat-poly2, pixel-grid'),
        sa.Column('params', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('serialized', sa.LargeBinary(), nullable=False, comment='Model serialization (see jspdb.psf)'),
        sa.Column('fwhm_arcsec', sa.Float(), nullable=False),
        sa.Column('n_stars', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['image_id'], ['jsp.image.image_id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['release_id'], ['jsp.release.release_id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('release_id', 'image_id'),
        schema='jsp'
    )
    op.execute("GRANT SELECT ON jsp.astrometric_solution, jsp.photometric_solution, jsp.psf_model TO jsp_reader")


def downgrade() -> None:
    op.drop_table("psf_model", schema="jsp")
    op.drop_table("photometric_solution", schema="jsp")
    op.drop_table("astrometric_solution", schema="jsp")
