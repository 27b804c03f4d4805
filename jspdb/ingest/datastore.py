"""The file datastore: where image files live and how the database names them.

``copy`` mode places a file under the datastore root by content
(``<root>/<survey>/<band>/<sha[:2]>/<sha[:16]>_<name>``), written to a
temporary name and renamed, so a crash never leaves a half-written file under
a real name and a rerun finds the same place. ``reference`` mode records the
file where it is.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

__all__ = ["StoredFile", "remove_created", "sha256_of", "store_file", "uri_to_path"]

_CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class StoredFile:
    """A file registered in the datastore."""

    uri: str
    path: Path
    created: bool  # True if this call put the file there (to undo on rollback)


def uri_to_path(uri: str) -> Path:
    """Local path of a ``file://`` URI."""
    if not uri.startswith("file://"):
        raise ValueError(f"not a local datastore URI: {uri}")
    return Path(uri[len("file://"):])


def store_file(src: Path, sha256: str, root: Path, survey: str, band: str, mode: str = "copy") -> StoredFile:
    """Register ``src`` in the datastore.

    Parameters
    ----------
    src
        File to register.
    sha256
        Its checksum (already computed by the caller).
    root
        Datastore root directory.
    survey, band
        Used to lay out the datastore.
    mode
        ``copy`` (into the datastore) or ``reference`` (leave it in place).
    """
    src = Path(src).resolve()
    if mode == "reference":
        return StoredFile(uri=f"file://{src}", path=src, created=False)
    if mode != "copy":
        raise ValueError(f"datastore mode must be copy or reference, got {mode!r}")
    dest = Path(root).resolve() / survey / band / sha256[:2] / f"{sha256[:16]}_{src.name}"
    if dest.exists():
        return StoredFile(uri=f"file://{dest}", path=dest, created=False)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)
    return StoredFile(uri=f"file://{dest}", path=dest, created=True)


def remove_created(files: list[StoredFile]) -> None:
    """Undo `store_file` calls that created files (after a rolled-back batch)."""
    for f in files:
        if f.created:
            try:
                f.path.unlink()
            except FileNotFoundError:
                pass
