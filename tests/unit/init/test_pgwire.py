"""The init's stdlib Postgres client (pgwire) and the probe's fallback to asyncpg.

asyncpg's own DSN and version parsers are the oracle for what pgwire must read the
same way; a fake server (fake_postgres.py) covers every auth method and odd answer.
"""

from __future__ import annotations

import base64
import os
import socket
import time
from typing import Any

import pytest
from asyncpg.connect_utils import _parse_connect_dsn_and_args
from asyncpg.serverversion import split_server_version_string

from codebase_mcp import migrate
from codebase_mcp.init import pgwire
from codebase_mcp.init.waits import VECTOR_SQL, PostgresProbe
from tests.unit.init.fake_postgres import PgState, fake_postgres

PLAIN_DSNS = [
    "postgresql://codebase:s3cret@127.0.0.1:5432/codebase",
    "postgres://u:p@db.internal/app",
    "postgresql://me%40x:s3cret%20p%40ss%2Fx@localhost:6543/d%20b",
    "postgresql://u:p@h:1/db",
]


@pytest.fixture
def no_pg_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("PG")]:
        monkeypatch.delenv(key)


def asyncpg_reads(dsn: str) -> tuple[str, int, str, str, str]:
    """(host, port, user, database, password) as asyncpg parses the DSN (with no PG* env)."""
    addrs, params = _parse_connect_dsn_and_args(
        dsn=dsn, host=None, port=None, user=None, password=None, passfile=None,
        database=None, ssl=None, service=None, servicefile=None, direct_tls=None,
        server_settings=None, target_session_attrs=None, krbsrvname=None, gsslib=None,
    )  # fmt: skip
    ((host, port),) = addrs
    return host, port, params.user, params.database, params.password


@pytest.mark.parametrize("dsn", PLAIN_DSNS)
@pytest.mark.usefixtures("no_pg_env")
def test_plain_dsns_read_as_asyncpg_reads_them(dsn: str) -> None:
    got = pgwire.target(dsn, {})
    assert (got.host, got.port, got.user, got.database, got.password) == asyncpg_reads(dsn)
    assert "password" not in repr(got)  # the field is kept out of repr


@pytest.mark.parametrize(
    ("dsn", "env"),
    [
        ("postgresql://u:p@h/db?sslmode=require", {}),  # parameters: asyncpg's business
        ("postgresql://u:p@h/db", {"PGSSLMODE": "require"}),  # asyncpg reads PG* variables
        ("postgresql://u:p@h/db", {"PGPASSFILE": "/x"}),
        ("postgresql://u@h/db", {}),  # no password: asyncpg would read ~/.pgpass
        ("postgresql://u:p@h1,h2/db", {}),  # host list
        ("postgresql://u:p@[::1]:5432/db", {}),  # IPv6 literal
        ("postgresql://u:p@%2Frun%2Fpostgresql/db", {}),  # Unix socket directory
        ("postgresql://u:p\u00e4ss@h/db", {}),  # non-ASCII password: SASLprep
        ("postgresql://u:p@h/", {}),  # no database name
        ("postgresql://u:p@h:54x/db", {}),
        ("mysql://u:p@h/db", {}),
    ],
)
def test_anything_unusual_is_left_to_asyncpg(dsn: str, env: dict[str, str]) -> None:
    with pytest.raises(pgwire.Unsupported):
        pgwire.target(dsn, env)


@pytest.mark.parametrize(
    "text",
    ["17.2 (Debian 17.2-1.pgdg120+1)", "16.4", "10.23", "12beta2", "17devel", "9.6.24",
     "9.4", "PostgreSQL 15.1 on x86_64", "14.5 (Ubuntu 14.5-0ubuntu0.22.04.1)"],
)  # fmt: skip
def test_server_version_reads_as_asyncpg_reports_it(text: str) -> None:
    version = split_server_version_string(text)
    assert pgwire.server_version(text) == f"{version.major}.{version.minor}"


def test_scram_matches_the_rfc_7677_example() -> None:
    # RFC 7677 section 3: user "user", password "pencil".
    client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO"
    server_first = (
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    )
    client_final_bare = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    proof, server_signature = pgwire.scram_client_proof(
        "pencil", client_first_bare, server_first, client_final_bare
    )
    assert base64.b64encode(proof).decode() == "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    assert (
        base64.b64encode(server_signature).decode()
        == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    )


def connect(state: PgState, port: int, password: str | None = None) -> pgwire.Connection:
    where = pgwire.Target("127.0.0.1", port, state.user, "codebase", password or state.password)
    return pgwire.Connection.open(where, timeout=5)


@pytest.mark.parametrize("method", ["trust", "password", "md5", "scram"])
def test_each_auth_method_connects_and_queries(method: str) -> None:
    state = PgState(auth=method, queries={"SELECT x": [("1", None), ("two", "3")]})
    with fake_postgres(state) as port:
        conn = connect(state, port)
        try:
            assert conn.auth_method == {"scram": "scram-sha-256"}.get(method, method)
            assert conn.parameters["server_version"] == state.server_version
            assert conn.query("SELECT x") == [("1", None), ("two", "3")]
        finally:
            conn.close()
    assert state.received[0] == "SSLRequest" and state.received[-1] == "Terminate"
    assert state.startup_params == [
        {"user": "codebase", "database": "codebase", "client_encoding": "UTF8"}
    ]


@pytest.mark.parametrize("method", ["password", "md5", "scram"])
def test_a_wrong_password_is_the_servers_error(method: str) -> None:
    state = PgState(auth=method)
    with fake_postgres(state) as port, pytest.raises(pgwire.ServerError, match="28P01"):
        connect(state, port, password="wrong")


def test_a_server_offering_tls_is_left_before_any_credential() -> None:
    state = PgState(auth="password", ssl_answer=b"S")
    with fake_postgres(state) as port, pytest.raises(pgwire.Unsupported, match="SSLRequest"):
        connect(state, port)
    assert state.received == ["SSLRequest"]  # no start-up message, no password in clear


@pytest.mark.parametrize("method", ["gss", "scram-plus-only"])
def test_other_auth_methods_are_left_to_asyncpg(method: str) -> None:
    state = PgState(auth=method)
    with fake_postgres(state) as port, pytest.raises(pgwire.Unsupported):
        connect(state, port)


def test_query_errors_and_start_up_errors_raise() -> None:
    state = PgState(startup_error="the database system is starting up")
    with fake_postgres(state) as port, pytest.raises(pgwire.ServerError, match="57P03"):
        connect(state, port)
    state = PgState(queries={"SELECT 1": [("1",)]})
    with fake_postgres(state) as port:
        conn = connect(state, port)
        try:
            with pytest.raises(pgwire.ServerError, match="does not exist"):
                conn.query("SELECT nothing")
            assert conn.query("SELECT 1") == [("1",)]  # read up to ReadyForQuery: still in step
        finally:
            conn.close()


def test_a_silent_server_times_out_within_the_timeout() -> None:
    with fake_postgres(PgState(hang_after_accept=True)) as port:
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            pgwire.Connection.open(pgwire.Target("127.0.0.1", port, "u", "db", "p"), 0.3)
        assert time.monotonic() - start < 2.0


# --- the probe: quick path first, asyncpg when it declines or fails ------------------------

READY = {
    "SELECT 1": [("1",)],
    VECTOR_SQL: [("0.8.0", "0.8.0")],
    migrate.VERSIONS_TABLE_SQL: [("t",)],
    migrate.VERSIONS_SQL: [("0001",)],
}


class RecordingProbe(PostgresProbe):
    """The real probe with asyncpg's half replaced by a recorder."""

    fallback_timeouts: list[float]

    async def _once(self, timeout: float) -> str:
        self.fallback_timeouts.append(timeout)
        return "asyncpg"


def probe_for(port: int, **kwargs: Any) -> RecordingProbe:
    probe = RecordingProbe(f"postgresql://codebase:s3cret@127.0.0.1:{port}/codebase", **kwargs)
    probe.fallback_timeouts = []
    return probe


@pytest.mark.usefixtures("no_pg_env")
def test_probe_takes_the_quick_path_when_all_is_plain() -> None:
    state = PgState(queries=dict(READY))
    with fake_postgres(state) as port:
        probe = probe_for(port, read_versions=True)
        assert probe(5.0) == "PostgreSQL 17.0, vector installed 0.8.0"
    assert probe.fallback_timeouts == []
    assert probe.versions == frozenset({"0001"})


@pytest.mark.usefixtures("no_pg_env")
def test_probe_reads_an_empty_schema_and_an_available_extension() -> None:
    queries = {**READY, VECTOR_SQL: [("0.8.0", None)], migrate.VERSIONS_TABLE_SQL: [("f",)]}
    state = PgState(queries=queries)
    with fake_postgres(state) as port:
        probe = probe_for(port, read_versions=True)
        assert probe(5.0) == "PostgreSQL 17.0, vector available 0.8.0"
    assert probe.versions == frozenset()
    assert f"Query {migrate.VERSIONS_SQL}" not in state.received


@pytest.mark.usefixtures("no_pg_env")
@pytest.mark.parametrize(
    "state",
    [
        PgState(queries={**READY, VECTOR_SQL: []}),  # no pgvector: asyncpg says so, as before
        PgState(queries=dict(READY), ssl_answer=b"S"),
        PgState(queries=dict(READY), password="other"),
        PgState(queries=dict(READY), startup_error="the database system is starting up"),
        PgState(queries={**READY, "SELECT 1": [("2",)]}),
    ],
    ids=["no-vector", "tls", "bad-password", "starting-up", "select-1"],
)
def test_probe_falls_back_to_asyncpg_with_the_time_left(state: PgState) -> None:
    with fake_postgres(state) as port:
        probe = probe_for(port, read_versions=True)
        assert probe(5.0) == "asyncpg"
    (left,) = probe.fallback_timeouts
    assert 0 < left <= 5.0
    assert probe.versions is None  # nothing half-read is kept


def test_probe_falls_back_when_nothing_listens() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        unused_port = int(sock.getsockname()[1])
    probe = probe_for(unused_port)
    assert probe(5.0) == "asyncpg"
    assert len(probe.fallback_timeouts) == 1


def test_probe_timeout_is_final_and_reads_like_asyncios() -> None:
    with fake_postgres(PgState(hang_after_accept=True)) as port:
        probe = probe_for(port)
        with pytest.raises(TimeoutError) as info:
            probe(0.3)
    assert str(info.value) == ""  # describe() shows "TimeoutError: no answer in time"
    assert probe.fallback_timeouts == []  # no second attempt past the attempt's timeout
