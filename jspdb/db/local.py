"""The project-local PostgreSQL cluster: the embedded default.

When no ``JSP_DATABASE_URL`` is configured, jspdb runs its own cluster with
the PostgreSQL binaries found on the machine: ``initdb`` into
``<home>/pgdata`` the first time, ``pg_ctl`` to start and stop it, listening
on 127.0.0.1 at ``local_port``. No system service and no root are needed.
PostgreSQL refuses to run as root, so when jspdb itself runs as root the
server runs as ``local_os_user`` (``postgres`` by default) instead.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL

from jspdb.config import Settings, get_settings
from jspdb.errors import LocalDatabaseError

__all__ = ["LocalCluster", "find_pg_bindir"]

SUPERUSER = "jspdb"  # not "jsp": a role named like a schema puts it on "$user" search paths
DATABASE = "jspdb"


def find_pg_bindir() -> Path:
    """Directory holding ``initdb`` and ``pg_ctl``.

    ``pg_config --bindir`` first, then ``initdb`` on ``PATH``, then the newest
    ``/usr/lib/postgresql/*/bin`` (Debian keeps initdb off ``PATH``).
    """
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        cand = Path(out.stdout.strip())
        if out.returncode == 0 and (cand / "initdb").exists():
            return cand
    initdb = shutil.which("initdb")
    if initdb:
        return Path(os.path.realpath(initdb)).parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0,
    )
    if versions:
        return Path(versions[-1]).parent
    raise LocalDatabaseError(
        "no PostgreSQL server binaries found (initdb, pg_ctl): install PostgreSQL 15+ "
        "or set JSP_DATABASE_URL to use an existing server"
    )


@dataclass
class LocalCluster:
    """A PostgreSQL cluster in a project-local data directory.

    Parameters
    ----------
    home
        Project-local state directory; the cluster lives in ``home/pgdata``.
    port
        TCP port on 127.0.0.1.
    os_user
        User that runs the server when the caller is root.
    """

    home: Path
    port: int
    os_user: str = "postgres"

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> LocalCluster:
        settings = settings or get_settings()
        return cls(home=Path(settings.home), port=settings.local_port, os_user=settings.local_os_user)

    @property
    def datadir(self) -> Path:
        return self.home / "pgdata"

    @property
    def logfile(self) -> Path:
        return self.datadir / "server.log"

    def url(self, database: str = DATABASE) -> URL:
        """SQLAlchemy URL of a database in this cluster."""
        return URL.create(
            "postgresql+psycopg", username=SUPERUSER, host="127.0.0.1", port=self.port, database=database
        )

    # -- process control --------------------------------------------------
    def _as_server_user(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        runuser = shutil.which("runuser") or shutil.which("su")
        if runuser is None:
            raise LocalDatabaseError("running as root but neither runuser nor su is available")
        if runuser.endswith("runuser"):
            return [runuser, "-u", self.os_user, "--", *argv]
        return [runuser, self.os_user, "-s", "/bin/sh", "-c", " ".join(map(_shquote, argv))]

    def _run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self._as_server_user(argv), capture_output=True, text=True)
        if check and proc.returncode != 0:
            tail = ""
            if self.logfile.exists():
                try:
                    tail = "\n".join(self.logfile.read_text(errors="replace").splitlines()[-15:])
                except OSError:
                    tail = ""
            raise LocalDatabaseError(
                f"{Path(argv[0]).name} failed (exit {proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()}" + (f"\nserver log:\n{tail}" if tail else "")
            )
        return proc

    def is_initialised(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def init(self) -> None:
        """Create the data directory with ``initdb`` (trust auth, UTF-8, C locale)."""
        if self.is_initialised():
            return
        bindir = find_pg_bindir()
        self.home.mkdir(parents=True, exist_ok=True)
        self.datadir.mkdir(mode=0o700, exist_ok=True)
        if os.geteuid() == 0:
            import pwd

            try:
                pw = pwd.getpwnam(self.os_user)
            except KeyError as exc:
                raise LocalDatabaseError(
                    f"running as root: the server must run as another user, and user "
                    f"{self.os_user!r} does not exist (set JSP_LOCAL_OS_USER)"
                ) from exc
            os.chown(self.datadir, pw.pw_uid, pw.pw_gid)
            probe = subprocess.run(self._as_server_user(["test", "-w", str(self.datadir)]))
            if probe.returncode != 0:
                raise LocalDatabaseError(
                    f"user {self.os_user!r} cannot reach {self.datadir} (a parent directory is "
                    f"not traversable); set JSP_HOME to a directory it can reach"
                )
        self._run(
            [
                str(bindir / "initdb"),
                "-D", str(self.datadir),
                "-U", SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ]
        )
        conf = self.datadir / "postgresql.auto.conf"
        # Only loopback TCP and a socket inside the data dir: the local cluster
        # must never be reachable from the network nor clash with /var/run.
        with conf.open("a") as fh:
            fh.write(
                f"port = {self.port}\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.datadir}'\n"
                "max_connections = 100\n"
                "shared_buffers = '256MB'\n"
                "max_locks_per_transaction = 512\n"
            )

    def is_running(self) -> bool:
        if not self.is_initialised():
            return False
        proc = self._run([str(find_pg_bindir() / "pg_ctl"), "-D", str(self.datadir), "status"], check=False)
        return proc.returncode == 0

    def start(self) -> bool:
        """Initialise if needed, start the server and create the jspdb database.

        Returns
        -------
        bool
            True if the server was started, False if it was already running.
        """
        self.init()
        started = False
        if not self.is_running():
            self._run(
                [
                    str(find_pg_bindir() / "pg_ctl"),
                    "-D", str(self.datadir),
                    "-l", str(self.logfile),
                    "-w", "-t", "60",
                    "start",
                ]
            )
            started = True
        self._ensure_database()
        return started

    def stop(self) -> bool:
        """Stop the server (fast shutdown). Returns False if it was not running."""
        if not self.is_running():
            return False
        self._run([str(find_pg_bindir() / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop"])
        return True

    def status(self) -> dict[str, object]:
        """A short description: data directory, port, initialised, running."""
        return {
            "datadir": str(self.datadir),
            "port": self.port,
            "initialised": self.is_initialised(),
            "running": self.is_running(),
            "url": self.url().render_as_string(hide_password=True),
        }

    def _ensure_database(self) -> None:
        dsn = self.url("postgres").set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))


def _shquote(s: str) -> str:
    import shlex

    return shlex.quote(s)
