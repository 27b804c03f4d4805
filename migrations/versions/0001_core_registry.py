"""Core registry: surveys, bands, releases, tiles, images, reference catalog, tile jobs.

Also creates the pg_sphere and q3c extensions, the jsp schema, the
read-only reader role, the SQL functions in sql/, and the reference
catalog's HEALPix partitions (at the configured partition order).

Revision ID: 0001
Revises: None
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import jspdb.db.types
from jspdb.db.migrate import sql_path

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen seed data (a migration must not change when application code does).
# Wavelengths in nm: LSST from the LSST throughput curves (half-maximum
# edges), Euclid VIS/NISP from Euclid Collaboration (2022, Schirmer+),
# Roman WFI from the Roman technical specification.
SURVEYS = [
    (1, "lsst", "Vera C. Rubin Observatory", "ground", "Legacy Survey of Space and Time"),
    (2, "euclid", "Euclid", "space", "Euclid Wide and Deep surveys"),
    (3, "roman", "Nancy Grace Roman Space Telescope", "space", "Roman High Latitude Wide Area Survey"),
]
INSTRUMENTS = [(1, 1, "LSSTCam", 0.2), (2, 2, "VIS", 0.1), (3, 2, "NISP", 0.3), (4, 3, "WFI", 0.11)]
BANDS = [
    (1, 1, 1, "u", 320.0, 367.0, 400.0),
    (2, 1, 1, "g", 400.0, 482.0, 552.0),
    (3, 1, 1, "r", 552.0, 622.0, 691.0),
    (4, 1, 1, "i", 691.0, 755.0, 818.0),
    (5, 1, 1, "z", 818.0, 869.0, 922.0),
    (6, 1, 1, "y", 922.0, 971.0, 1060.0),
    (7, 2, 2, "VIS", 550.0, 715.0, 900.0),
    (8, 2, 3, "Y", 950.0, 1081.0, 1212.0),
    (9, 2, 3, "J", 1168.0, 1367.0, 1567.0),
    (10, 2, 3, "H", 1523.0, 1772.0, 2021.0),
    (11, 3, 4, "F062", 480.0, 620.0, 760.0),
    (12, 3, 4, "F087", 760.0, 869.0, 977.0),
    (13, 3, 4, "F106", 927.0, 1059.0, 1192.0),
    (14, 3, 4, "F129", 1131.0, 1293.0, 1454.0),
    (15, 3, 4, "F158", 1380.0, 1577.0, 1774.0),
    (16, 3, 4, "F184", 1683.0, 1842.0, 2000.0),
]


def _seed() -> None:
    meta = sa.MetaData(schema="jsp")
    survey = sa.Table("survey", meta, autoload_with=op.get_bind())
    instrument = sa.Table("instrument", meta, autoload_with=op.get_bind())
    band = sa.Table("band", meta, autoload_with=op.get_bind())
    op.bulk_insert(survey, [dict(zip(("survey_id", "name", "facility", "platform", "description"), r, strict=True))
                            for r in SURVEYS])
    op.bulk_insert(instrument, [dict(zip(("instrument_id", "survey_id", "name", "pixel_scale_arcsec"), r,
                                         strict=True)) for r in INSTRUMENTS])
    op.bulk_insert(band, [dict(zip(("band_id", "survey_id", "instrument_id", "name", "wl_min_nm", "wl_eff_nm",
                                    "wl_max_nm"), r, strict=True)) for r in BANDS])


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_sphere")
    op.execute("CREATE EXTENSION IF NOT EXISTS q3c")
    op.execute("CREATE SCHEMA IF NOT EXISTS jsp")
    # Roles are cluster-wide: create only if missing, never drop on downgrade
    # (other databases in the cluster may hold grants to it).
    # Two databases of one cluster may migrate at once: the loser of that race
    # finds the role made and goes on.
    op.execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'jsp_reader') "
        "THEN CREATE ROLE jsp_reader NOLOGIN; END IF; "
        "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
    )
    op.create_table(
        'refcat',
        sa.Column('hpx29', sa.BigInteger(), autoincrement=False, nullable=False, comment='Nested HEALPix index, order 29'),
        sa.Column('source_id', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('ra', sa.Float(), nullable=False, comment='deg, at ref_epoch'),
        sa.Column('dec', sa.Float(), nullable=False, comment='deg, at ref_epoch'),
        sa.Column('ra_err_mas', sa.Float(), nullable=False, comment='mas (times cos dec)'),
        sa.Column('dec_err_mas', sa.Float(), nullable=False, comment='mas'),
        sa.Column('ref_epoch', sa.Float(), nullable=False, comment='Julian year, e.g. 2016.0'),
        sa.Column('pmra', sa.Float(), nullable=True, comment='mas/yr (times cos dec)'),
        sa.Column('pmdec', sa.Float(), nullable=True, comment='mas/yr'),
        sa.Column('pmra_err', sa.Float(), nullable=True, comment='mas/yr'),
        sa.Column('pmdec_err', sa.Float(), nullable=True, comment='mas/yr'),
        sa.Column('parallax', sa.Float(), nullable=True, comment='mas'),
        sa.Column('parallax_err', sa.Float(), nullable=True, comment='mas'),
        sa.Column('g_mag', sa.Float(), nullable=True, comment='G, AB mag'),
        sa.Column('g_mag_err', sa.Float(), nullable=True, comment='mag'),
        sa.Column('bp_mag', sa.Float(), nullable=True, comment='BP, AB mag'),
        sa.Column('rp_mag', sa.Float(), nullable=True, comment='RP, AB mag'),
        sa.CheckConstraint('dec BETWEEN -90 AND 90', name='refcat_dec_range'),
        sa.CheckConstraint('ra >= 0 AND ra < 360', name='refcat_ra_range'),
        sa.PrimaryKeyConstraint('hpx29', 'source_id'),
        schema='jsp',
        comment='Astrometric/photometric reference catalog at its reference epoch',
        postgresql_partition_by='RANGE (hpx29)'
    )
    op.create_table(
        'release',
        sa.Column('release_id', sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column('name', sa.Text(), nullable=False, comment='Release name = its schema name'),
        sa.Column('state', sa.Text(), server_default='staging', nullable=False),
        sa.Column('software_version', sa.Text(), nullable=False),
        sa.Column('config', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False, comment='Processing configuration'),
        sa.Column('partition_order', sa.SmallInteger(), nullable=False, comment='HEALPix order of catalog partitions'),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("name ~ '^[a-z][a-z0-9_]{0,30}$'", name='release_name_check'),
        sa.CheckConstraint("state IN ('staging', 'public', 'retired')", name='release_state_check'),
        sa.PrimaryKeyConstraint('release_id'),
        sa.UniqueConstraint('name'),
        schema='jsp'
    )
    op.create_table(
        'survey',
        sa.Column('survey_id', sa.SmallInteger(), nullable=False),
        sa.Column('name', sa.Text(), nullable=False, comment='Short name, e.g. lsst'),
        sa.Column('facility', sa.Text(), nullable=False, comment='Observatory / telescope'),
        sa.Column('platform', sa.Text(), nullable=False, comment='ground or space'),
        sa.Column('description', sa.Text(), nullable=True),
        sa.CheckConstraint("platform IN ('ground', 'space')", name='survey_platform_check'),
        sa.PrimaryKeyConstraint('survey_id'),
        sa.UniqueConstraint('name'),
        schema='jsp',
        comment='Surveys whose images the warehouse holds'
    )
    op.create_table(
        'tile',
        sa.Column('tile_order', sa.SmallInteger(), nullable=False),
        sa.Column('ipix', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('ra_center', sa.Float(), nullable=False, comment='Pixel centre RA, deg'),
        sa.Column('dec_center', sa.Float(), nullable=False, comment='Pixel centre Dec, deg'),
        sa.Column('boundary', jspdb.db.types.SPoly(), nullable=False, comment='Pixel boundary polygon'),
        sa.PrimaryKeyConstraint('tile_order', 'ipix'),
        schema='jsp'
    )
    op.create_index('tile_boundary_gist', 'tile', ['boundary'], unique=False, schema='jsp', postgresql_using='gist')
    op.create_table(
        'instrument',
        sa.Column('instrument_id', sa.SmallInteger(), nullable=False),
        sa.Column('survey_id', sa.SmallInteger(), nullable=False),
        sa.Column('name', sa.Text(), nullable=False, comment='e.g. LSSTCam, VIS, NISP, WFI'),
        sa.Column('pixel_scale_arcsec', sa.Float(), nullable=False, comment='Nominal pixel scale, arcsec'),
        sa.ForeignKeyConstraint(['survey_id'], ['jsp.survey.survey_id'], ),
        sa.PrimaryKeyConstraint('instrument_id'),
        sa.UniqueConstraint('survey_id', 'name'),
        schema='jsp'
    )
    op.create_table(
        'band',
        sa.Column('band_id', sa.SmallInteger(), nullable=False),
        sa.Column('survey_id', sa.SmallInteger(), nullable=False),
        sa.Column('instrument_id', sa.SmallInteger(), nullable=False),
        sa.Column('name', sa.Text(), nullable=False, comment='Band name as the survey writes it (r, VIS, F158)'),
        sa.Column('wl_min_nm', sa.Float(), nullable=False, comment='Blue edge, nm'),
        sa.Column('wl_eff_nm', sa.Float(), nullable=False, comment='Effective wavelength, nm'),
        sa.Column('wl_max_nm', sa.Float(), nullable=False, comment='Red edge, nm'),
        sa.CheckConstraint('wl_min_nm < wl_eff_nm AND wl_eff_nm < wl_max_nm', name='band_wl_order'),
        sa.ForeignKeyConstraint(['instrument_id'], ['jsp.instrument.instrument_id'], ),
        sa.ForeignKeyConstraint(['survey_id'], ['jsp.survey.survey_id'], ),
        sa.PrimaryKeyConstraint('band_id'),
        sa.UniqueConstraint('survey_id', 'name'),
        schema='jsp'
    )
    op.create_table(
        'image',
        sa.Column('image_id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column('survey_id', sa.SmallInteger(), nullable=False),
        sa.Column('band_id', sa.SmallInteger(), nullable=False),
        sa.Column('release_id', sa.Integer(), nullable=True, comment='Producing release (coadds); NULL for raw inputs'),
        sa.Column('kind', sa.Text(), nullable=False, comment='single_epoch, coadd, difference, cutout'),
        sa.Column('obs_id', sa.Text(), nullable=False, comment="Survey's own identifier of the exposure/product"),
        sa.Column('uri', sa.Text(), nullable=False, comment='Datastore URI of the file'),
        sa.Column('checksum_sha256', sa.String(length=64), nullable=False),
        sa.Column('size_bytes', sa.BigInteger(), nullable=False),
        sa.Column('naxis1', sa.Integer(), nullable=False, comment='Width, pixels'),
        sa.Column('naxis2', sa.Integer(), nullable=False, comment='Height, pixels'),
        sa.Column('wcs_header', sa.Text(), nullable=False, comment='FITS WCS header as delivered'),
        sa.Column('pixel_scale_arcsec', sa.Float(), nullable=False),
        sa.Column('ra_center', sa.Float(), nullable=False, comment='deg'),
        sa.Column('dec_center', sa.Float(), nullable=False, comment='deg'),
        sa.Column('center', jspdb.db.types.SPoint(), nullable=False),
        sa.Column('footprint', jspdb.db.types.SPoly(), nullable=False),
        sa.Column('t_min_mjd', sa.Float(), nullable=False),
        sa.Column('t_max_mjd', sa.Float(), nullable=False),
        sa.Column('exptime_s', sa.Float(), nullable=False),
        sa.Column('wl_min_nm', sa.Float(), nullable=False),
        sa.Column('wl_max_nm', sa.Float(), nullable=False),
        sa.Column('psf_fwhm_arcsec', sa.Float(), nullable=True),
        sa.Column('depth5_mag', sa.Float(), nullable=True, comment='5-sigma point-source depth, AB mag'),
        sa.Column('zeropoint_mag', sa.Float(), nullable=True, comment='Nominal AB zero point, mag'),
        sa.Column('has_variance', sa.Boolean(), server_default='true', nullable=False),
        sa.Column('has_mask', sa.Boolean(), server_default='true', nullable=False),
        sa.Column('ingested_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.CheckConstraint("checksum_sha256 ~ '^[0-9a-f]{64}$'", name='image_checksum_hex'),
        sa.CheckConstraint("kind IN ('single_epoch', 'coadd', 'difference', 'cutout')", name='image_kind_check'),
        sa.CheckConstraint('t_min_mjd <= t_max_mjd', name='image_time_order'),
        sa.ForeignKeyConstraint(['band_id'], ['jsp.band.band_id'], ),
        sa.ForeignKeyConstraint(['release_id'], ['jsp.release.release_id'], ),
        sa.ForeignKeyConstraint(['survey_id'], ['jsp.survey.survey_id'], ),
        sa.PrimaryKeyConstraint('image_id'),
        sa.UniqueConstraint('uri'),
        schema='jsp',
        comment='Images (ObsCore-aligned metadata)'
    )
    op.create_index('image_band_idx', 'image', ['band_id'], unique=False, schema='jsp')
    op.create_index('image_footprint_gist', 'image', ['footprint'], unique=False, schema='jsp', postgresql_using='gist')
    op.create_table(
        'tile_job',
        sa.Column('job_id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column('release_id', sa.Integer(), nullable=False),
        sa.Column('step', sa.Text(), nullable=False),
        sa.Column('tile_order', sa.SmallInteger(), nullable=True),
        sa.Column('tile_ipix', sa.BigInteger(), nullable=True),
        sa.Column('image_id', sa.BigInteger(), nullable=True),
        sa.Column('state', sa.Text(), server_default='pending', nullable=False),
        sa.Column('attempts', sa.SmallInteger(), server_default='0', nullable=False),
        sa.Column('worker', sa.Text(), nullable=True, comment='hostname:pid of the last worker'),
        sa.Column('input_fingerprint', sa.Text(), nullable=True, comment='Hash of the inputs of the last success'),
        sa.Column('queued_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('duration_s', sa.Float(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.CheckConstraint("state IN ('pending', 'queued', 'running', 'done', 'failed', 'skipped')", name='tile_job_state_check'),
        sa.ForeignKeyConstraint(['image_id'], ['jsp.image.image_id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['release_id'], ['jsp.release.release_id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['tile_order', 'tile_ipix'], ['jsp.tile.tile_order', 'jsp.tile.ipix'], ),
        sa.PrimaryKeyConstraint('job_id'),
        sa.UniqueConstraint('release_id', 'step', 'tile_order', 'tile_ipix', 'image_id', name='tile_job_unit_key', postgresql_nulls_not_distinct=True),
        schema='jsp'
    )
    op.create_index('tile_job_state_idx', 'tile_job', ['release_id', 'step', 'state'], unique=False, schema='jsp')

    op.execute("CREATE INDEX refcat_q3c_idx ON jsp.refcat (q3c_ang2ipix(ra, dec))")
    op.execute(sql_path("partitions.sql").read_text())
    op.execute(sql_path("release.sql").read_text())
    order = int(op.get_context().config.attributes.get("partition_order", 3))
    op.execute(sa.text("SELECT jsp.create_hpx_partitions('jsp.refcat'::regclass, :o)").bindparams(o=order))
    _seed()
    op.execute("GRANT USAGE ON SCHEMA jsp TO jsp_reader")
    op.execute("GRANT SELECT ON ALL TABLES IN SCHEMA jsp TO jsp_reader")


def downgrade() -> None:
    op.execute("DROP TABLE jsp.tile_job")
    op.execute("DROP TABLE jsp.image")
    op.execute("DROP TABLE jsp.band")
    op.execute("DROP TABLE jsp.instrument")
    op.execute("DROP TABLE jsp.tile")
    op.execute("DROP TABLE jsp.survey")
    op.execute("DROP TABLE jsp.release")
    op.execute("DROP TABLE jsp.refcat")  # drops its partitions with it
    op.execute("DROP FUNCTION jsp.publish_release(text)")
    op.execute("DROP FUNCTION jsp.create_release_schema(text, integer)")
    op.execute("DROP FUNCTION jsp.hpx_partition_order(regclass)")
    op.execute("DROP FUNCTION jsp.create_hpx_partitions(regclass, integer)")
    op.execute("REVOKE ALL ON SCHEMA jsp FROM jsp_reader")
    op.execute("DROP SCHEMA jsp")
