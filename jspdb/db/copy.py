"""Bulk loading with PostgreSQL binary ``COPY`` (psycopg 3).

Rows arrive as columns (numpy arrays). They are encoded to the binary COPY
format in numpy, a whole chunk at a time: a row of fixed-width fields is a
fixed-size record, so one structured array with big-endian fields *is* the
wire format. This is faster than psycopg's per-row ``write_row`` (1.3-1.8x end
to end into a bare table: ``bench/bench_foundation.py load``, docs/benchmarks.md).
NULLs change a field's width, so rows are grouped by
their NULL pattern and each group is encoded with its own record layout.

Everything goes in one transaction: a load that fails anywhere leaves nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import psycopg
from psycopg import sql

from jspdb.errors import LoadError

__all__ = ["PG_BINARY", "copy_columns", "encode_binary_copy"]

#: numpy dtype of the binary COPY wire format of each supported PostgreSQL type.
PG_BINARY: dict[str, str] = {
    "float8": ">f8",
    "double precision": ">f8",
    "float4": ">f4",
    "real": ">f4",
    "int8": ">i8",
    "bigint": ">i8",
    "int4": ">i4",
    "integer": ">i4",
    "int2": ">i2",
    "smallint": ">i2",
    "bool": "u1",
    "boolean": "u1",
}

_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
_TRAILER = (-1).to_bytes(2, "big", signed=True)


def _null_mask(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f":
        return np.isnan(values)
    if np.ma.isMaskedArray(values):
        return np.ma.getmaskarray(values)
    return np.zeros(values.shape, dtype=bool)


def encode_binary_copy(columns: Sequence[np.ndarray], pg_types: Sequence[str],
                       nullable: Sequence[bool]) -> bytes:
    """Encode rows (given as columns) as the body of a binary ``COPY``.

    Parameters
    ----------
    columns
        One 1-d array per column, all the same length.
    pg_types
        PostgreSQL type of each column (keys of `PG_BINARY`).
    nullable
        Whether NaN (floats) / masked entries become NULL; in a non-nullable
        column they raise `LoadError`.

    Returns
    -------
    bytes
        Tuples only (no header or trailer).
    """
    n = len(columns[0])
    wire = [np.dtype(PG_BINARY[t]) for t in pg_types]
    masks = []
    for i, (col, ok) in enumerate(zip(columns, nullable, strict=True)):
        m = _null_mask(np.asarray(col) if not np.ma.isMaskedArray(col) else col)
        if m.any() and not ok:
            raise LoadError(f"column {i}: {int(m.sum())} NULL/NaN value(s) in a NOT NULL column "
                            f"(first at row {int(np.argmax(m))})")
        masks.append(m)
    # Group rows by NULL pattern: each pattern is one fixed-size record layout.
    bits = np.zeros(n, dtype=np.uint64)
    for i, m in enumerate(masks):
        bits |= m.astype(np.uint64) << np.uint64(i)
    out = []
    for pattern in np.unique(bits):
        rows = np.flatnonzero(bits == pattern) if len(masks) else np.arange(n)
        fields = [("n", ">i2")]
        for i, dt in enumerate(wire):
            fields.append((f"l{i}", ">i4"))
            if not (int(pattern) >> i) & 1:
                fields.append((f"v{i}", dt))
        rec = np.empty(rows.size, dtype=np.dtype(fields))
        rec["n"] = len(columns)
        for i, dt in enumerate(wire):
            if (int(pattern) >> i) & 1:
                rec[f"l{i}"] = -1
            else:
                rec[f"l{i}"] = dt.itemsize
                rec[f"v{i}"] = np.asarray(columns[i])[rows]
        out.append(rec.tobytes())
    return b"".join(out)


def copy_columns(
    conn: psycopg.Connection,
    table: str,
    data: Mapping[str, np.ndarray],
    pg_types: Mapping[str, str],
    nullable: Mapping[str, bool] | None = None,
    *,
    chunk_rows: int = 250_000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """``COPY`` columns into ``table`` (``schema.name``) in binary format.

    Runs inside the caller's transaction (or its own, if none is open); the
    caller commits. Any failure raises `LoadError` after the whole load
    has been rolled back to where it started.

    Parameters
    ----------
    conn
        psycopg 3 connection.
    table
        Qualified table name, ``schema.table`` (an identifier, never user text).
    data
        Column name -> 1-d array; all the same length.
    pg_types
        Column name -> PostgreSQL type (see `PG_BINARY`).
    nullable
        Column name -> whether NaN/masked values become NULL (default False).
    chunk_rows
        Rows encoded per chunk (bounds memory).
    progress
        Called with the number of rows written after each chunk.

    Returns
    -------
    int
        Rows written.
    """
    names = list(data)
    lengths = {len(data[c]) for c in names}
    if len(lengths) != 1:
        raise LoadError(f"columns have different lengths: {sorted(lengths)}")
    n = lengths.pop()
    nullable = nullable or {}
    missing = [c for c in names if c not in pg_types]
    if missing:
        raise LoadError(f"no PostgreSQL type given for column(s) {missing}")
    schema, _, relname = table.partition(".")
    ident = sql.Identifier(schema, relname) if relname else sql.Identifier(schema)
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        ident, sql.SQL(", ").join(map(sql.Identifier, names))
    )
    types = [pg_types[c] for c in names]
    nulls = [nullable.get(c, False) for c in names]
    try:
        with conn.transaction(), conn.cursor() as cur, cur.copy(stmt) as cp:
            cp.write(_HEADER)
            for start in range(0, n, chunk_rows):
                stop = min(start + chunk_rows, n)
                try:
                    body = encode_binary_copy([np.asarray(data[c])[start:stop] for c in names], types, nulls)
                except LoadError as exc:
                    raise LoadError(f"{table}, rows {start}..{stop - 1}: {exc}") from exc
                cp.write(body)
                if progress:
                    progress(stop - start)
            cp.write(_TRAILER)
    except psycopg.Error as exc:
        diag = exc.diag
        where = f" ({diag.context.strip()})" if diag and diag.context else ""
        raise LoadError(f"COPY into {table} failed, nothing was loaded: {diag.message_primary or exc}{where}") from exc
    return n
