"""The project-local cluster, driven through the real `jsp` command."""

import os
import shutil
import socket
import tempfile
from pathlib import Path

import psycopg
import pytest

from jspdb.db.local import LocalCluster, find_pg_bindir


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def local_env():
    try:
        find_pg_bindir()
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"no PostgreSQL binaries: {exc}")
    home = Path(tempfile.mkdtemp(prefix="jsp-local-"))
    home.chmod(0o755)  # reachable by the server's user when tests run as root
    env = {k: v for k, v in os.environ.items() if not k.startswith("JSP_")}
    env.update(JSP_HOME=str(home / "state"), JSP_LOCAL_PORT=str(_free_port()), JSP_PARTITION_ORDER="1")
    yield env
    LocalCluster(home=home / "state", port=int(env["JSP_LOCAL_PORT"])).stop()
    shutil.rmtree(home, ignore_errors=True)


def test_start_stop_start_keeps_data(run_jsp, local_env):
    out = run_jsp("db", "start", env=local_env).stdout
    assert out.startswith("started:")
    assert "already running" in run_jsp("db", "start", env=local_env).stdout
    run_jsp("db", "upgrade", env=local_env)
    run_jsp("release", "create", "dr1", env=local_env)
    url = f"postgresql://jspdb@127.0.0.1:{local_env['JSP_LOCAL_PORT']}/jspdb"
    with psycopg.connect(url) as c:
        c.execute("CREATE TABLE public.keepme (x int)")
        c.execute("INSERT INTO public.keepme VALUES (42)")

    assert run_jsp("db", "stop", env=local_env).stdout.strip() == "stopped"
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)
    status = run_jsp("db", "status", env=local_env).stdout
    assert "running      False" in status

    assert run_jsp("db", "start", env=local_env).stdout.startswith("started:")
    with psycopg.connect(url) as c:
        assert c.execute("SELECT x FROM public.keepme").fetchone()[0] == 42
    assert "dr1" in run_jsp("release", "list", env=local_env).stdout
    from jspdb.db.migrate import head

    assert f"revision     {head()} (head {head()})" in run_jsp("db", "status", env=local_env).stdout


def test_db_commands_refuse_when_a_url_is_configured(run_jsp, cli_env):
    proc = run_jsp("db", "start", env=cli_env, check=False)
    assert proc.returncode == 1
    assert "JSP_DATABASE_URL is set" in proc.stderr
