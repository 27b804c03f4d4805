#!/usr/bin/env bash
# Prepare a fresh machine for jspdb: the PostgreSQL extensions (system-wide)
# and a virtual environment with the package and its test extras.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "jspdb needs Python 3.11 or newer ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null 2>&1; then
    bash scripts/install-extensions.sh
else
    echo "warning: not root and no sudo: install postgresql-15-pgsphere and postgresql-15-q3c yourself" >&2
fi

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e ".[test]"
echo "jspdb installed in $VENV"
