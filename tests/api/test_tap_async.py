"""Async TAP (UWS 1.1) on real Celery workers, private workspaces, quotas, abuse."""

from __future__ import annotations

import io
import time
import xml.etree.ElementTree as ET

import psycopg
import pytest
import pyvo
import requests
from astropy.io.votable import parse_single_table
from pyvo.dal.exceptions import DALQueryError, DALServiceError

UWS = "{http://www.ivoa.net/xml/UWS/v1.0}"


@pytest.fixture(autouse=True)
def _anon(anon):
    global ANON
    ANON = anon


ANON: requests.Session | None = None


def _tap(server, user=None) -> pyvo.dal.TAPService:
    return pyvo.dal.TAPService(server.tap, session=user.session() if user else ANON)


def _job(session: requests.Session, url: str) -> ET.Element:
    r = session.get(url)
    r.raise_for_status()
    return ET.fromstring(r.content)


def _wait(session: requests.Session, url: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        phase = session.get(f"{url}/phase").text
        if phase in ("COMPLETED", "ERROR", "ABORTED") or time.monotonic() > deadline:
            return phase
        time.sleep(0.1)


def _run_async(tap, query: str, timeout: float = 60):
    """pyvo's run_async, but bounded: a worker that never picks the job up fails the test in a minute."""
    job = tap.submit_job(query)
    try:
        job.run().wait(timeout=timeout)
        job.raise_if_error()
        return job.fetch_result()
    finally:
        job.delete()


def test_run_async_equals_hand_sql(server, users, db):
    tap = _tap(server, users["alice"])
    q = ("SELECT o.object_id, f.band_id, f.flux_njy FROM dr1.object AS o JOIN dr1.forced_photometry AS f "
         "ON f.object_id = o.object_id AND f.hpx29 = o.hpx29 WHERE "
         "1 = CONTAINS(POINT('ICRS', o.ra, o.dec), CIRCLE('ICRS', 150, 2, 0.3))")
    got = _run_async(tap, q).to_table()
    want = db.execute("SELECT o.object_id, f.band_id, f.flux_njy FROM dr1.object o JOIN dr1.forced_photometry f "
                      "ON f.object_id = o.object_id AND f.hpx29 = o.hpx29 WHERE q3c_radial_query(o.ra, o.dec, 150, 2, "
                      "0.3)").fetchall()
    assert len(want) > 0
    assert sorted(zip(got["object_id"].tolist(), got["band_id"].tolist(), got["flux_njy"].tolist(),
                      strict=True)) == sorted(want)


def test_uws_lifecycle(server, users):
    s = users["alice"].session()
    r = s.post(f"{server.tap}/async", data={"QUERY": "SELECT TOP 3 source_id FROM jsp.refcat ORDER BY source_id",
                                            "LANG": "ADQL", "RUNID": "mine", "RESPONSEFORMAT": "csv"},
               allow_redirects=False)
    assert r.status_code == 303
    url = r.headers["location"]
    job = _job(s, url)
    assert job.find(f"{UWS}phase").text == "PENDING"
    assert job.find(f"{UWS}runId").text == "mine"
    assert job.find(f"{UWS}ownerId").text == "alice"
    assert s.get(f"{url}/quote").ok
    # EXECUTIONDURATION and DESTRUCTION can be set while PENDING.
    s.post(f"{url}/executionduration", data={"EXECUTIONDURATION": "30"})
    assert s.get(f"{url}/executionduration").text == "30"
    s.post(f"{url}/destruction", data={"DESTRUCTION": "2030-01-01T00:00:00Z"})
    assert s.get(f"{url}/destruction").text.startswith("20")
    params = ET.fromstring(s.get(f"{url}/parameters").content)
    assert {p.get("id") for p in params} >= {"query", "lang", "responseformat"}
    s.post(f"{url}/phase", data={"PHASE": "RUN"})
    assert _wait(s, url) == "COMPLETED"
    job = _job(s, url)
    href = job.find(f"{UWS}results/{UWS}result").get("{http://www.w3.org/1999/xlink}href")
    assert href.endswith("/results/result")
    assert s.get(href).text.splitlines() == ["source_id", "1", "2", "3"]
    # UWS 1.1 blocking: WAIT returns at once for a finished job.
    t0 = time.monotonic()
    s.get(url, params={"WAIT": 5})
    assert time.monotonic() - t0 < 2
    # The job is in alice's list, and can be deleted.
    jobs = ET.fromstring(s.get(f"{server.tap}/async").content)
    assert url.rsplit("/", 1)[1] in {j.get("id") for j in jobs}
    r = s.delete(url, allow_redirects=False)
    assert r.status_code == 303
    assert s.get(url).status_code == 404


def test_async_error_phase(server, users):
    s = users["alice"].session()
    r = s.post(f"{server.tap}/async", data={"QUERY": "SELECT nosuch FROM jsp.refcat", "PHASE": "RUN"})
    url = r.url
    assert _wait(s, url) == "ERROR"
    err = s.get(f"{url}/error")
    t = parse_single_table  # noqa: F841 (the error document is a VOTable)
    assert b'value="ERROR"' in err.content and b"nosuch" in err.content
    job = _job(s, url)
    assert "nosuch" in job.find(f"{UWS}errorSummary/{UWS}message").text
    with pytest.raises(DALQueryError, match="nosuch"):
        _run_async(_tap(server, users["alice"]), "SELECT nosuch FROM jsp.refcat")


def test_async_timeout_and_abort(server, users, db):
    s = users["bob"].session()
    slow = "SELECT COUNT(*) AS n FROM jsp.refcat AS a, jsp.refcat AS b WHERE a.g_mag + b.g_mag < 0"
    r = s.post(f"{server.tap}/async", data={"QUERY": slow, "EXECUTIONDURATION": "1", "PHASE": "RUN"})
    assert _wait(s, r.url) == "ERROR"
    assert "longer than its limit of 1 s" in _job(s, r.url).find(f"{UWS}errorSummary/{UWS}message").text
    # ABORT cancels the query in the database.
    r = s.post(f"{server.tap}/async", data={"QUERY": slow, "PHASE": "RUN"})
    deadline = time.monotonic() + 20
    while s.get(f"{r.url}/phase").text != "EXECUTING" and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    s.post(f"{r.url}/phase", data={"PHASE": "ABORT"})
    assert s.get(f"{r.url}/phase").text == "ABORTED"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        busy = db.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                          "AND query LIKE %s AND state = 'active'", ("%a.g_mag + b.g_mag%",)).fetchone()[0]
        if busy == 0:
            break
        time.sleep(0.1)
    assert busy == 0


def test_jobs_are_private(server, users):
    alice, bob = users["alice"].session(), users["bob"].session()
    r = alice.post(f"{server.tap}/async", data={"QUERY": "SELECT TOP 1 source_id FROM jsp.refcat", "PHASE": "RUN"})
    url = r.url
    assert _wait(alice, url) == "COMPLETED"
    job_id = url.rsplit("/", 1)[1]
    for path in ("", "/phase", "/results", "/results/result", "/parameters", "/error"):
        assert bob.get(url + path).status_code == 404
        assert requests.get(url + path).status_code == 404  # anonymous
    assert bob.post(f"{url}/phase", data={"PHASE": "ABORT"}).status_code == 404
    assert bob.delete(url).status_code == 404
    assert job_id not in bob.get(f"{server.tap}/async").text
    assert alice.get(url).ok
    # Guessing: ids are 128 random bits.
    assert len(job_id) == 32
    assert bob.get(f"{server.tap}/async/{'0' * 32}").status_code == 404


def test_private_schema_saved_result_enforced_by_postgres(server, users, db):
    alice, bob = users["alice"], users["bob"]
    s = alice.session()
    r = s.post(f"{server.tap}/async", data={"QUERY": "SELECT TOP 4 source_id, ra, dec FROM jsp.refcat "
                                                     "ORDER BY source_id", "SAVE_AS": "bright", "PHASE": "RUN"})
    assert _wait(s, r.url) == "COMPLETED"
    time.sleep(0.6)  # TAP_SCHEMA cache of the test server
    got = _tap(server, alice).run_sync("SELECT source_id FROM u_alice.bright ORDER BY source_id").to_table()
    assert got["source_id"].tolist() == [1, 2, 3, 4]
    assert "u_alice.bright" in _tap(server, alice).tables.keys()
    assert "u_alice.bright" not in _tap(server, bob).tables.keys()
    with pytest.raises(DALQueryError, match="unknown table"):
        _tap(server, bob).run_sync("SELECT source_id FROM u_alice.bright")
    with pytest.raises(DALQueryError, match="unknown table"):
        _tap(server).run_sync("SELECT source_id FROM u_alice.bright")
    # Not only the application: PostgreSQL itself refuses bob's role and the anonymous role.
    for role in (bob.role, "jsp_reader"):
        with db.transaction():
            db.execute(f'SET LOCAL ROLE "{role}"')
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                with db.transaction():
                    db.execute("SELECT * FROM u_alice.bright")


def test_query_roles_are_read_only_and_own_nothing(db, users):
    roles = ["jsp_reader"] + [u.role for u in users.values()]
    owned = db.execute("SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
                       "WHERE r.rolname = ANY(%s)", (roles,)).fetchone()[0]
    assert owned == 0
    owned = db.execute("SELECT count(*) FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner "
                       "WHERE r.rolname = ANY(%s)", (roles,)).fetchone()[0]
    assert owned == 0
    for role in roles:
        for stmt in ("INSERT INTO jsp.refcat (hpx29, source_id, ra, dec, ra_err_mas, dec_err_mas, ref_epoch) "
                     "VALUES (1, 1, 1, 1, 1, 1, 2016)", "DELETE FROM jsp.refcat", "DROP TABLE jsp.refcat",
                     "SELECT * FROM jsp.api_token", "CREATE TABLE jsp.x (a int)",
                     f"CREATE TABLE {users['alice'].schema}.x (a int)"):
            with db.transaction():
                db.execute(f'SET LOCAL ROLE "{role}"')
                with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction():
                    db.execute(stmt)


@pytest.mark.parametrize("query", [
    "DROP TABLE jsp.refcat",
    "SELECT * FROM jsp.refcat; DROP TABLE jsp.refcat",
    "DELETE FROM jsp.refcat",
    "INSERT INTO jsp.refcat (source_id) VALUES (1)",
    "SELECT source_id FROM jsp.refcat WHERE source_id = 1; UPDATE jsp.refcat SET ra = 0",
    "SELECT pg_terminate_backend(1) FROM jsp.refcat",
    "SELECT set_config('transaction_read_only', 'off', true) FROM jsp.refcat",
    "SELECT nextval('jsp.release_release_id_seq') FROM jsp.refcat",
    "SELECT source_id FROM jsp.refcat WHERE source_id = '1''; DROP TABLE jsp.refcat; --'",
    "SELECT source_id FROM jsp.refcat WHERE g_mag < 1 UNION SELECT user_id FROM jsp.api_token",
    "SELECT * FROM jsp.query_log",
])
def test_writes_and_injection_are_refused_and_change_nothing(server, db, query):
    before = db.execute("SELECT count(*), sum(ra) FROM jsp.refcat").fetchone()
    for user in (None,):
        with pytest.raises((DALQueryError, DALServiceError)):
            _tap(server, user).run_sync(query)
    assert db.execute("SELECT count(*), sum(ra) FROM jsp.refcat").fetchone() == before
    assert db.execute("SELECT to_regclass('jsp.refcat')").fetchone()[0] is not None


def test_concurrent_job_quota(server, users):
    s = users["carol"].session()  # carol may run one job at a time
    slow = "SELECT COUNT(*) AS n FROM jsp.refcat AS a, jsp.refcat AS b WHERE a.g_mag + b.g_mag < 0"
    first = s.post(f"{server.tap}/async", data={"QUERY": slow, "PHASE": "RUN", "EXECUTIONDURATION": "20"})
    second = s.post(f"{server.tap}/async", data={"QUERY": "SELECT TOP 1 ra FROM jsp.refcat"})
    r = s.post(f"{second.url}/phase", data={"PHASE": "RUN"})
    assert r.status_code == 429 and b"limit 1" in r.content
    assert s.get(f"{second.url}/phase").text == "PENDING"
    s.post(f"{first.url}/phase", data={"PHASE": "ABORT"})
    r = s.post(f"{second.url}/phase", data={"PHASE": "RUN"})
    assert _wait(s, second.url) == "COMPLETED"


def test_rate_limit(server, users):
    s = users["carol"].session()  # 20 requests per minute
    codes = [s.get(f"{server.tap}/sync", params={"QUERY": "SELECT TOP 1 ra FROM jsp.refcat"}).status_code
             for _ in range(25)]
    assert 429 in codes and codes[0] == 200
    r = s.get(f"{server.tap}/sync", params={"QUERY": "SELECT TOP 1 ra FROM jsp.refcat"})
    assert r.status_code == 429 and r.headers.get("retry-after")
    # Others are not affected.
    assert users["alice"].session().get(f"{server.tap}/sync",
                                        params={"QUERY": "SELECT TOP 1 ra FROM jsp.refcat"}).ok


def test_bad_token(server):
    r = requests.get(f"{server.tap}/sync", params={"QUERY": "SELECT TOP 1 ra FROM jsp.refcat"},
                     headers={"Authorization": "Bearer jsp_nope"})
    assert r.status_code == 401 and b"unknown or revoked token" in r.content


def test_expired_jobs_and_results_are_removed(server, users, db):
    s = users["alice"].session()
    r = s.post(f"{server.tap}/async", data={"QUERY": "SELECT TOP 2 ra FROM jsp.refcat", "PHASE": "RUN"})
    assert _wait(s, r.url) == "COMPLETED"
    job_id = r.url.rsplit("/", 1)[1]
    assert (server.datastore / "tap" / job_id).is_dir()
    db.execute("UPDATE jsp.uws_job SET destruction = now() - interval '1 s' WHERE job_id = %s", (job_id,))
    s.get(f"{server.tap}/async")  # listing purges expired jobs
    assert s.get(r.url).status_code == 404
    assert not (server.datastore / "tap" / job_id).exists()


def test_anonymous_async(server):
    tap = _tap(server)
    t = _run_async(tap, "SELECT TOP 2 source_id FROM jsp.refcat ORDER BY source_id").to_table()
    assert t["source_id"].tolist() == [1, 2]
    assert b"jobref" not in requests.get(f"{server.tap}/async").content


def test_user_cli(server, users):
    import subprocess
    import sys

    env = dict(server.env)
    code = "from jspdb.cli.user import app; app()"
    out = subprocess.run([sys.executable, "-c", code, "add", "dave"], env=env, capture_output=True, text=True,
                         check=True)
    token = out.stdout.strip()
    assert token.startswith("jsp_")
    try:
        r = requests.get(f"{server.tap}/sync", params={"QUERY": "SELECT TOP 1 ra FROM jsp.refcat"},
                         headers={"Authorization": f"Bearer {token}"})
        assert r.ok
        bad = subprocess.run([sys.executable, "-c", code, "add", "Dave!"], env=env, capture_output=True, text=True)
        assert bad.returncode == 1 and "bad user name" in bad.stderr
    finally:
        subprocess.run([sys.executable, "-c", code, "remove", "dave"], env=env, check=True, capture_output=True)


def test_votable_binary2_roundtrip_with_astropy(server):
    r = requests.get(f"{server.tap}/sync", params={
        "QUERY": "SELECT TOP 5 source_id, ra, g_mag, obs_id FROM jsp.refcat AS r, ivoa.obscore AS o "
                 "ORDER BY source_id, obs_id"})
    t = parse_single_table(io.BytesIO(r.content)).to_table(use_names_over_ids=True)
    assert t["source_id"].tolist() == [1, 1, 1, 1, 2]
    assert t["obs_id"].tolist() == ["obs0", "obs1", "obs2", "obs3", "obs0"]


def test_result_byte_limit_per_user(server, users, db):
    db.execute("UPDATE jsp.api_user SET max_bytes = 5000 WHERE name = 'bob'")
    try:
        s = users["bob"].session()
        r = s.get(f"{server.tap}/sync", params={"QUERY": "SELECT TOP 500 * FROM jsp.refcat"})
        assert r.status_code == 400 and b"above your limit of 5000" in r.content
        assert s.get(f"{server.tap}/sync", params={"QUERY": "SELECT TOP 2 source_id FROM jsp.refcat"}).ok
        r = s.post(f"{server.tap}/async", data={"QUERY": "SELECT TOP 500 * FROM jsp.refcat", "PHASE": "RUN"})
        assert _wait(s, r.url) == "ERROR"
        assert "above your limit of 5000" in _job(s, r.url).find(f"{UWS}errorSummary/{UWS}message").text
    finally:
        db.execute("UPDATE jsp.api_user SET max_bytes = NULL WHERE name = 'bob'")


def test_workspace_tables_are_private(server, users, db):
    alice, bob = users["alice"], users["bob"]
    csv = b"id,ra,dec\n1,150.0,2.0\n2,150.01,2.01\n"
    s = alice.session()
    r = s.post(f"{server.tap}/workspace/tables", data={"TABLE": "targets"}, files={"t": ("t.csv", csv)})
    assert r.status_code == 201 and r.json() == {"table": "u_alice.targets", "rows": 2}
    r = s.post(f"{server.tap}/workspace/tables", data={"TABLE": "targets"}, files={"t": ("t.csv", csv)})
    assert r.status_code == 409
    assert "u_alice.targets" in [t["table"] for t in s.get(f"{server.tap}/workspace/tables").json()]
    got = _tap(server, alice).run_sync(
        "SELECT t.id, COUNT(*) AS n FROM u_alice.targets AS t JOIN jsp.refcat AS r ON "
        "1 = CONTAINS(POINT('ICRS', r.ra, r.dec), CIRCLE('ICRS', t.ra, t.dec, 0.05)) GROUP BY t.id").to_table()
    assert sorted(got["id"].tolist()) == [1, 2]
    with pytest.raises(DALQueryError, match="unknown table"):
        _tap(server, bob).run_sync("SELECT * FROM u_alice.targets")
    assert bob.session().delete(f"{server.tap}/workspace/tables/targets").status_code == 404
    assert requests.get(f"{server.tap}/workspace/tables").status_code == 401
    with db.transaction():
        db.execute(f'SET LOCAL ROLE "{bob.role}"')
        with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction():
            db.execute("SELECT * FROM u_alice.targets")
    assert s.delete(f"{server.tap}/workspace/tables/targets").status_code == 204
    assert "u_alice.targets" not in [t["table"] for t in s.get(f"{server.tap}/workspace/tables").json()]
