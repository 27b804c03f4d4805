"""Ingest: image planes, image-tile links, replaced versions, reference synthetic photometry.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("image", sa.Column("source_path", sa.Text(), nullable=True,
                                     comment="Path the file was ingested from"), schema="jsp")
    op.add_column("image", sa.Column("saturation", sa.Float(), nullable=True,
                                     comment="Saturation level, image units"), schema="jsp")
    op.add_column("image", sa.Column("gain", sa.Float(), nullable=True, comment="e-/ADU"), schema="jsp")
    op.add_column("image", sa.Column("header", postgresql.JSONB(astext_type=sa.Text()), nullable=True,
                                     comment="Primary + science header cards as delivered"), schema="jsp")
    op.create_index("image_checksum_key", "image", ["checksum_sha256"], unique=True, schema="jsp")
    op.create_index("image_source_path_idx", "image", ["source_path"], unique=False, schema="jsp")
    op.create_table(
        "image_plane",
        sa.Column("image_id", sa.BigInteger(), nullable=False),
        sa.Column("plane", sa.Text(), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False, comment="Datastore URI of the file holding the plane"),
        sa.Column("hdu", sa.Text(), nullable=False, comment="HDU name or index (or ASDF key)"),
        sa.Column("convention", sa.Text(), nullable=False,
                  comment="e.g. variance, rms, rubin-mask, euclid-flag, roman-dq"),
        sa.Column("checksum_sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("plane IN ('science', 'variance', 'mask')", name="image_plane_kind_check"),
        sa.ForeignKeyConstraint(["image_id"], ["jsp.image.image_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("image_id", "plane"),
        schema="jsp",
        comment="Planes of an image: file, HDU and how to read them",
    )
    op.create_table(
        "image_tile",
        sa.Column("image_id", sa.BigInteger(), nullable=False),
        sa.Column("tile_order", sa.SmallInteger(), nullable=False),
        sa.Column("tile_ipix", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.ForeignKeyConstraint(["image_id"], ["jsp.image.image_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("image_id", "tile_order", "tile_ipix"),
        schema="jsp",
    )
    op.create_index("image_tile_tile_idx", "image_tile", ["tile_order", "tile_ipix"], unique=False, schema="jsp")
    op.create_table(
        "image_version",
        sa.Column("version_id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("image_id", sa.BigInteger(), nullable=False, comment="image_id the version belonged to"),
        sa.Column("source_path", sa.Text(), nullable=True),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("checksum_sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("record", postgresql.JSONB(astext_type=sa.Text()), nullable=False, comment="The image row as it was"),
        sa.Column("replaced_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("version_id"),
        schema="jsp",
    )
    op.create_table(
        "refcat_synphot",
        sa.Column("hpx29", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("source_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("band_id", sa.SmallInteger(), nullable=False),
        sa.Column("mag", sa.Float(), nullable=False, comment="AB mag"),
        sa.Column("mag_err", sa.Float(), nullable=False, comment="mag"),
        sa.ForeignKeyConstraint(["band_id"], ["jsp.band.band_id"]),
        sa.PrimaryKeyConstraint("hpx29", "source_id", "band_id"),
        schema="jsp",
        comment="Reference-star magnitudes in survey bands, AB",
        postgresql_partition_by="RANGE (hpx29)",
    )
    # Same partitioning as jsp.refcat, so a star and its photometry share a partition.
    op.execute("SELECT jsp.create_hpx_partitions('jsp.refcat_synphot'::regclass, "
               "jsp.hpx_partition_order('jsp.refcat'::regclass))")
    op.execute("GRANT SELECT ON jsp.image_plane, jsp.image_tile, jsp.refcat_synphot TO jsp_reader")


def downgrade() -> None:
    op.drop_table("refcat_synphot", schema="jsp")
    op.drop_table("image_version", schema="jsp")
    op.drop_index("image_tile_tile_idx", table_name="image_tile", schema="jsp")
    op.drop_table("image_tile", schema="jsp")
    op.drop_table("image_plane", schema="jsp")
    op.drop_index("image_source_path_idx", table_name="image", schema="jsp")
    op.drop_index("image_checksum_key", table_name="image", schema="jsp")
    op.drop_column("image", "header", schema="jsp")
    op.drop_column("image", "gain", schema="jsp")
    op.drop_column("image", "saturation", schema="jsp")
    op.drop_column("image", "source_path", schema="jsp")
