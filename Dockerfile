# The jspdb application image: CLI, migrations, (later) Celery workers and the API.
#
#   docker build -t jspdb .
#   docker run --rm -e JSP_DATABASE_URL=postgresql://... jspdb jsp db upgrade
#
# jspdb is installed in editable mode on purpose: migrations/, sql/ and
# alembic.ini are read from the source tree (jspdb.db.migrate.REPO_ROOT),
# so the tree must stay at /app inside the image.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLBACKEND=Agg \
    MPLCONFIGDIR=/tmp/matplotlib

# psycopg[binary] ships its own libpq; numpy, astropy, cdshealpix, galsim,
# sep and pyarrow all have manylinux wheels for CPython 3.11, so no compiler
# is needed. postgresql-client gives operators psql/pg_dump inside the image.
RUN set -eux; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-client tini; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --system --gid 1000 jsp; \
    useradd --system --uid 1000 --gid jsp --home-dir /app --shell /usr/sbin/nologin jsp; \
    mkdir -p /data/datastore; \
    chown jsp:jsp /data/datastore

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so that editing the source
# does not reinstall them (layer cache).
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The source tree (see .dockerignore), then the package itself, editable.
COPY . .
RUN pip install --no-deps -e . && jsp --help >/dev/null

# JSP_DATABASE_URL and JSP_BROKER_URL come from the deployment (compose);
# without JSP_DATABASE_URL jspdb would look for a local cluster, which this
# image does not run.
ENV JSP_DATASTORE_ROOT=/data/datastore
VOLUME ["/data/datastore"]

USER jsp
ENTRYPOINT ["tini", "--"]
CMD ["jsp", "--help"]
