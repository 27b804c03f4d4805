# PostgreSQL 15 with the extensions jspdb needs (pg_sphere, q3c).
#
# Build context: the repository root (see docker-compose.yml), so that the
# same scripts/install-extensions.sh serves CI, developer machines and this
# image. The official image already carries the PGDG apt repository; the
# script installs postgresql-15-pgsphere and postgresql-15-q3c and, when the
# installed pg_sphere is Debian's 1.2.0, removes the two obsolete GAVO
# operators that PostgreSQL >= 15.20 rejects (upstream pgsphere PR #92).
# python3-minimal is needed only for that patch.
FROM postgres:15-bookworm

COPY scripts/install-extensions.sh /usr/local/bin/jsp-install-extensions.sh

RUN set -eux; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-minimal; \
    PGVER=15 /usr/local/bin/jsp-install-extensions.sh; \
    test -f /usr/share/postgresql/15/extension/pg_sphere.control; \
    test -f /usr/share/postgresql/15/extension/q3c.control; \
    rm -rf /var/lib/apt/lists/*

# The extensions are created by the first migration (`jsp db upgrade`, run
# by the compose `migrate` service as the database owner/superuser), not
# here, so the database image and the local cluster behave the same.
