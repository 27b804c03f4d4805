#!/usr/bin/env bash
# Install the PostgreSQL extensions jspdb needs (pg_sphere, q3c) from Debian,
# and apply upstream pgsphere's fix for newer PostgreSQL minors.
#
# Why the patch: Debian bookworm ships pg_sphere 1.2.0 for PostgreSQL 15, whose
# install script defines two obsolete GAVO-compatibility operators
# @(bigint, smoc) and @(spoint, smoc) with COMMUTATOR '@>'. PostgreSQL 15.20+
# rejects that ("commutator operator @> is already the commutator of operator
# <@"), so CREATE EXTENSION fails. Upstream removed exactly those two
# operators (postgrespro/pgsphere PR #92, "Drop obsolete compatibility
# operators"); we remove them from the installed script the same way.
# Idempotent; needs root (or sudo) for apt and for the extension directory.
set -euo pipefail

PGVER="${PGVER:-$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)}"
PGVER="${PGVER:-15}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

extdir="/usr/share/postgresql/${PGVER}/extension"
if [ ! -f "${extdir}/pg_sphere.control" ] || [ ! -f "${extdir}/q3c.control" ]; then
    echo "installing postgresql-${PGVER}-pgsphere and postgresql-${PGVER}-q3c"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        "postgresql-${PGVER}-pgsphere" "postgresql-${PGVER}-q3c" >/dev/null
fi

for f in "${extdir}"/pg_sphere--*.sql; do
    if grep -q "healpix_subset_smoc,\s*$" "$f" 2>/dev/null && grep -q "backwards-compatible operators for GAVO DaCHS" "$f"; then
        echo "patching $(basename "$f"): dropping obsolete @(bigint|spoint, smoc) operators (pgsphere PR #92)"
        $SUDO python3 - "$f" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
pattern = re.compile(
    r"-- a minimal set of backwards-compatible operators for GAVO DaCHS,.*?"
    r"CREATE OPERATOR @ \(\s*LEFTARG\s*=\s*bigint,.*?\);\s*"
    r"CREATE OPERATOR @ \(\s*LEFTARG\s*=\s*spoint,\s*RIGHTARG\s*=\s*smoc,.*?\);\s*",
    re.S,
)
new, n = pattern.subn("", text)
if n != 1:
    sys.exit(f"{path}: expected one block of compatibility operators, found {n}")
open(path, "w").write(new)
PY
    fi
done
echo "pg_sphere and q3c available for PostgreSQL ${PGVER}"
