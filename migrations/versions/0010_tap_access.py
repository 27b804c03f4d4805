"""Access tier: TAP users and tokens, UWS jobs, query log, TAP_SCHEMA views, ivoa.obscore.

The access tables are readable by no query role (REVOKE below): ADQL cannot
reach tokens, other users' jobs or the log. TAP_SCHEMA is a set of views over
the catalog (sql/tap_schema.sql), ivoa.obscore a view over jsp.image
(sql/obscore.sql).

Revision ID: 0010
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from jspdb.db.migrate import sql_path

revision: str = '0010'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('api_user',
    sa.Column('user_id', sa.Integer(), sa.Identity(always=False), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('role_name', sa.Text(), nullable=False, comment='LOGIN-less role queries run under'),
    sa.Column('schema_name', sa.Text(), nullable=False, comment='Private schema (uploads, saved results)'),
    sa.Column('max_async_jobs', sa.Integer(), nullable=True, comment='Override of the default limit'),
    sa.Column('max_rows', sa.BigInteger(), nullable=True, comment='Override of the default limit'),
    sa.Column('max_bytes', sa.BigInteger(), nullable=True, comment='Override of the default limit'),
    sa.Column('timeout_ms', sa.Integer(), nullable=True, comment='Override of the default limit'),
    sa.Column('rate_per_min', sa.Integer(), nullable=True, comment='Override of the default limit'),
    sa.Column('disabled', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("name ~ '^[a-z][a-z0-9_]{0,30}$'", name='api_user_name_check'),
    sa.PrimaryKeyConstraint('user_id'),
    sa.UniqueConstraint('name'),
    sa.UniqueConstraint('role_name'),
    sa.UniqueConstraint('schema_name'),
    schema='jsp',
    comment='Users of the TAP service (bearer-token authenticated)'
    )
    op.create_table('tap_annotation',
    sa.Column('schema_name', sa.Text(), nullable=False),
    sa.Column('table_name', sa.Text(), nullable=False),
    sa.Column('column_name', sa.Text(), nullable=False),
    sa.Column('unit', sa.Text(), nullable=True),
    sa.Column('ucd', sa.Text(), nullable=True),
    sa.Column('utype', sa.Text(), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('principal', sa.Boolean(), nullable=True),
    sa.PrimaryKeyConstraint('schema_name', 'table_name', 'column_name'),
    schema='jsp',
    comment='TAP_SCHEMA column metadata beyond COMMENTs'
    )
    op.create_table('api_token',
    sa.Column('token_id', sa.Integer(), sa.Identity(always=False), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token_sha256', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['jsp.api_user.user_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_id'),
    sa.UniqueConstraint('token_sha256'),
    schema='jsp'
    )
    op.create_table('query_log',
    sa.Column('log_id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('user_name', sa.Text(), nullable=False, comment="anonymous or the user's name"),
    sa.Column('mode', sa.Text(), nullable=False, comment='sync, async or sia'),
    sa.Column('job_id', sa.Text(), nullable=True),
    sa.Column('query', sa.Text(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('duration_ms', sa.Float(), nullable=True),
    sa.Column('rows', sa.BigInteger(), nullable=True),
    sa.Column('status', sa.Text(), nullable=False, comment='OK, OVERFLOW, ERROR, REJECTED, TIMEOUT'),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['jsp.api_user.user_id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('log_id'),
    schema='jsp',
    comment='Every TAP query: who, when, how long, rows, status'
    )
    op.create_index('query_log_user_idx', 'query_log', ['user_id', 'started_at'], unique=False, schema='jsp')
    op.create_table('uws_job',
    sa.Column('job_id', sa.Text(), nullable=False, comment='Random, unguessable'),
    sa.Column('owner_id', sa.Integer(), nullable=True, comment='NULL: anonymous'),
    sa.Column('run_id', sa.Text(), nullable=True),
    sa.Column('phase', sa.Text(), server_default='PENDING', nullable=False),
    sa.Column('query', sa.Text(), nullable=False),
    sa.Column('lang', sa.Text(), server_default='ADQL', nullable=False),
    sa.Column('maxrec', sa.BigInteger(), nullable=False),
    sa.Column('response_format', sa.Text(), nullable=False),
    sa.Column('uploads', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False, comment='name -> stored upload file'),
    sa.Column('execution_duration', sa.Integer(), nullable=False, comment='Seconds'),
    sa.Column('destruction', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('result_path', sa.Text(), nullable=True, comment='Datastore-relative path'),
    sa.Column('result_rows', sa.BigInteger(), nullable=True),
    sa.Column('result_bytes', sa.BigInteger(), nullable=True),
    sa.Column('overflow', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('task_id', sa.Text(), nullable=True, comment='Celery task id'),
    sa.Column('backend_pid', sa.Integer(), nullable=True, comment='Server process running it (for ABORT)'),
    sa.Column('save_as', sa.Text(), nullable=True, comment="Table in the owner's schema to save the result in"),
    sa.CheckConstraint("phase IN ('PENDING', 'QUEUED', 'EXECUTING', 'COMPLETED', 'ERROR', 'ABORTED', 'ARCHIVED')", name='uws_job_phase_check'),
    sa.ForeignKeyConstraint(['owner_id'], ['jsp.api_user.user_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id'),
    schema='jsp',
    comment='Asynchronous TAP jobs (UWS 1.1)'
    )
    op.create_index('uws_job_destruction_idx', 'uws_job', ['destruction'], unique=False, schema='jsp')
    op.create_index('uws_job_owner_idx', 'uws_job', ['owner_id', 'phase'], unique=False, schema='jsp')
    for t in ("api_user", "api_token", "uws_job", "query_log", "tap_annotation"):
        op.execute(f"REVOKE ALL ON jsp.{t} FROM PUBLIC, jsp_reader")
    op.execute(sql_path("tap_schema.sql").read_text())
    op.execute(sql_path("obscore.sql").read_text())


def downgrade() -> None:
    op.execute("DROP SCHEMA ivoa CASCADE")
    op.execute("DROP SCHEMA tap_schema CASCADE")
    op.execute("DROP FUNCTION jsp.tap_votype(regtype)")
    op.execute("DROP FUNCTION jsp.tap_guess_ucd(text)")
    op.execute("DROP FUNCTION jsp.tap_guess_unit(text)")
    op.drop_index('uws_job_owner_idx', table_name='uws_job', schema='jsp')
    op.drop_index('uws_job_destruction_idx', table_name='uws_job', schema='jsp')
    op.drop_table('uws_job', schema='jsp')
    op.drop_index('query_log_user_idx', table_name='query_log', schema='jsp')
    op.drop_table('query_log', schema='jsp')
    op.drop_table('api_token', schema='jsp')
    op.drop_table('tap_annotation', schema='jsp')
    op.drop_table('api_user', schema='jsp')
