"""Hostile input to every tool, through a real MCP client, against a real ``serve``
(real Postgres, fake embedder, path roots as in the pod).

Three passes: a table (every named category for every parameter of every tool),
a Hypothesis pass (arbitrary JSON values in every parameter, derandomized so CI
sees the same cases), and raw JSON-RPC bodies (deep nesting, bad JSON, huge
bodies). After them: every hostile call got an error (or, for a read-only tool
given merely odd but valid text, a well-formed answer), the server still answers
/health and a real search, its log has no traceback, and no table changed.

The tests talk to the tool interface only (names and parameters, as a client
sees them); the server's tool list and every tool's parameters are checked
against TOOLS first, so a new, renamed or removed tool or parameter fails loudly
instead of going untested.
"""

from __future__ import annotations

import asyncio
import json
import os
import posixpath
import re
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import asyncpg
import httpx
import pytest
from fastmcp import Client
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.integration.server.conftest import SAMPLE_FILES, write_repo
from tests.integration.server.fake_embedder import FakeEmbedder, free_port, running_fake_embedder
from tests.integration.server.serve_process import Served, migrated_database, serving
from tests.support.postgres import PgServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

T = TypeVar("T")
HOST_ROOT = "/home/someone/code"  # what the client knows; mapped to a tmp directory
SEED_PROJECT = "seed"
SEED_REPO = f"{HOST_ROOT}/repo"
SEED_QUERY = "parse a JSON configuration file"
TOOLS = {
    "start_indexing_background": {
        "repo_path",
        "project_id",
        "force_reindex",
        "watch",
        "repo_url",
        "ref",
    },
    "get_indexing_status": {"job_id"},
    "cancel_indexing": {"job_id"},
    "search_code": {"query", "project_id", "limit", "file_type", "directory", "detail"},
    "list_projects": set(),
    "delete_project": {"project_id"},
}
# Read-only tools may answer odd but valid text (a unicode query) with results.
READ_ONLY = {"search_code", "list_projects", "get_indexing_status"}
NIL_UUID = "00000000-0000-0000-0000-000000000000"


# --- the server and a client session on a loop of its own ------------------------------


class Session:
    """One MCP client session, driven from sync test code (Hypothesis needs sync tests)."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client: Client[Any] = Client(url, timeout=60)
        self.run(self.client.__aenter__())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout=120)

    def call(self, tool: str, arguments: dict[str, Any]) -> Outcome:
        async def call() -> Outcome:
            try:
                result = await self.client.call_tool(
                    tool, arguments, raise_on_error=False, timeout=60
                )
            except Exception as exc:  # a JSON-RPC error (e.g. the body could not be read)
                return Outcome("protocol_error", f"{type(exc).__name__}: {exc}")
            text = "\n".join(getattr(block, "text", "") for block in result.content)
            if result.is_error:
                return Outcome("tool_error", text)
            return Outcome("ok", text, result.structured_content)

        return self.run(call())

    def close(self) -> None:
        try:
            self.run(self.client.__aexit__(None, None, None))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)


@dataclass
class Outcome:
    kind: Literal["ok", "tool_error", "protocol_error"]
    text: str
    data: dict[str, Any] | None = None


@dataclass
class Stack:
    served: Served
    session: Session
    dsn: str
    roots: Path
    seed_job: str
    before: dict[str, str]  # table digests right after the seed index
    counts: dict[str, int] = field(default_factory=dict)  # cases per pass

    def health(self) -> dict[str, Any]:
        response = httpx.get(f"{self.served.url}/health", timeout=10)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def make_roots(base: Path) -> Path:
    """The directory HOST_ROOT maps to: the seed repository and traps beside it."""
    roots = base / "roots"
    write_repo(roots / "repo", SAMPLE_FILES)
    outside = base / "outside"
    outside.mkdir()
    (outside / "stolen.py").write_text("SECRET = 'outside the roots'\n")
    (roots / "link-out").symlink_to(outside)
    (roots / "link-etc").symlink_to("/etc")
    (roots / "link-proc").symlink_to("/proc/self")
    (roots / "link-loop").symlink_to(roots / "link-loop")
    (roots / "repo" / "inner-link-proc").symlink_to("/proc/self/environ")
    (roots / "file.txt").write_text("not a directory\n")
    os.mkfifo(roots / "fifo")
    return roots


async def table_digests(dsn: str) -> dict[str, str]:
    """Every table in the public schema: row count and a digest of every row."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1"
        )
        out = {}
        for (name,) in tables:
            row = await conn.fetchrow(
                f"SELECT count(*) AS n, md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "  # noqa: E501
                f'AS digest FROM "{name}" t'
            )
            out[name] = f"{row['n']}:{row['digest']}"
        return out
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def stack(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("hostile")
    roots = make_roots(base)
    port = free_port()
    with (
        running_fake_embedder() as fake,
        migrated_database(pg_server) as dsn,
        serving([], server_env(dsn, fake, port, roots), base / "server.log", port) as served,
    ):
        session = Session(f"{served.url}/mcp")
        try:
            schemas = session.run(tool_schemas(session.client))
            # Every tool, every parameter: a new one fails here until it has hostile values.
            assert set(schemas) == set(TOOLS), f"tools changed: {sorted(schemas)}; update TOOLS"
            for tool, params in TOOLS.items():
                assert set(schemas[tool]) == params, (
                    f"{tool} takes {sorted(schemas[tool])}: update TOOLS and values_for()"
                )
            seed_job = seed_index(session)
            before = asyncio.run(table_digests(dsn))
            yield Stack(served, session, dsn, roots, seed_job, before)
        finally:
            session.close()


def server_env(dsn: str, fake: FakeEmbedder, port: int, roots: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": dsn,
        "EMBEDDER_URL": fake.url,
        "EMBEDDER_MODEL": fake.model,
        "CODEBASE_MCP_HOST": "127.0.0.1",
        "CODEBASE_MCP_PORT": str(port),
        "CODEBASE_MCP_ROOTS": f"{HOST_ROOT}={roots}",
        "CODEBASE_MCP_POLL_INTERVAL": "0.2",
    }


async def tool_schemas(client: Client[Any]) -> dict[str, dict[str, Any]]:
    return {t.name: t.input_schema.get("properties", {}) for t in await client.list_tools()}


def seed_index(session: Session) -> str:
    """Index the sample repository once: the state nothing hostile may change."""
    started = session.call(
        "start_indexing_background", {"repo_path": SEED_REPO, "project_id": SEED_PROJECT}
    )
    assert started.kind == "ok" and started.data, started.text
    job = str(started.data["job_id"])
    for _ in range(300):
        status = session.call("get_indexing_status", {"job_id": job})
        assert status.data is not None, status.text
        if status.data["status"] in ("completed", "failed", "cancelled"):
            break
        session.run(asyncio.sleep(0.2))
    assert status.data["status"] == "completed", status.data
    # the walk skipped the symlink to /proc/self/environ: the environment is not indexed
    assert status.data["files_skipped"] >= 1
    found = session.call("search_code", {"query": SEED_QUERY, "project_id": SEED_PROJECT})
    assert "config_loader.py" in found.text
    assert "DATABASE_URL" not in found.text
    return job


# --- the table ---------------------------------------------------------------------

NUL = ["\x00", "a\x00b", f"{SEED_REPO}\x00/etc", "seed\x00"]
UNICODE = [
    "\u202eexe.txt",  # right-to-left override
    "\ufeffseed",  # byte order mark
    "se\u200bed",  # zero-width space
    "e\u0301" * 500,  # combining marks
    "🙂" * 100,
    "Ｓｅｅｄ",  # fullwidth: NFKC-folds to Seed
    "\u2028\u2029",
    "\U0010ffff",
    "\x7f\x1b[31m\r",  # DEL, an ANSI escape, a carriage return
]
# Unpaired surrogates cannot be encoded by a client (not UTF-8): the raw pass sends them
# as JSON escapes.
HUGE_TEXT = ["a" * 5_000, "x" * 200_000, "é" * 50_000]
PATHS = [
    "",
    " ",
    "relative/repo",
    "~/code",
    "..",
    "../../etc",
    f"{HOST_ROOT}/../../../etc",
    f"{HOST_ROOT}/repo/../../..",
    f"{HOST_ROOT}/../code-evil",
    f"{HOST_ROOT}/repo/%2e%2e/%2e%2e",
    "//etc",
    "file:///etc",
    "/",
    "/etc",
    "/proc",
    "/proc/self",
    "/proc/self/environ",
    "/proc/self/root",
    "/proc/1/cwd",
    "/sys",
    "/dev",
    "/dev/null",
    f"{HOST_ROOT}/link-out",
    f"{HOST_ROOT}/link-etc",
    f"{HOST_ROOT}/link-proc",
    f"{HOST_ROOT}/link-loop",
    f"{HOST_ROOT}/repo/inner-link-proc",
    f"{HOST_ROOT}/file.txt",
    f"{HOST_ROOT}/fifo",
    f"{HOST_ROOT}/does-not-exist",
    f"{HOST_ROOT}/repo/" + "d/" * 3000,
    "/" + "a" * 300,
]
IDS = [
    "",
    " ",
    "seed ",
    "seed%",
    "*",
    "%",
    "seed' OR '1'='1",
    "'; DROP TABLE chunks; --",
    "seed\n",
    "../seed",
    "a" * 129,
    "a" * 100_000,
]
JOB_IDS = [
    "",
    "not-a-uuid",
    NIL_UUID,
    "00000000-0000-0000-0000-00000000000",  # one digit short
    "' OR 1=1 --",
    "1" * 10_000,
]
INTEGERS = [0, -1, -(2**31), 2**31, 2**63, 10**40, -(10**40), 101, 10**6]
GIT_URLS = [
    "",
    " ",
    "https://github.com/o/r.git",  # well-formed, but no host is allowed here
    "git@github.com:o/r.git",
    "file:///etc",
    f"file://{SEED_REPO}",
    SEED_REPO,
    "ext::sh -c id",
    "fd::3",
    "ssh://-oProxyCommand=id/x",
    "--upload-pack=id",
    "https://user:hunter2@github.com/o/r.git",
    "http://127.0.0.1:1/x.git",
]
WRONG_TYPES: list[Any] = [
    None,
    [],
    {},
    ["seed"],
    {"$ne": ""},
    1.5,
    -0.5,
    1e308,
    [[[[["deep"]]]]],
    {"a": {"b": {"c": {"d": "e"}}}},
]
DEEP: Any = "x"
for _ in range(200):
    DEEP = [DEEP]
DEEP_DICT: Any = "x"
for _ in range(200):
    DEEP_DICT = {"k": DEEP_DICT}


def valid_arguments(tool: str, stack: Stack) -> dict[str, Any]:
    """Arguments under which only the hostile one can be wrong.

    For the tools that write, the baseline itself must refuse to write if the
    hostile value were ignored: start_indexing points at a missing directory,
    cancel/delete at a job or project that does not exist. So an "ok" for them
    can only mean the hostile value was taken as something else: a finding.
    """
    return {
        "start_indexing_background": {
            "repo_path": f"{HOST_ROOT}/does-not-exist",
            "project_id": "hostile",
        },
        "get_indexing_status": {"job_id": stack.seed_job},
        "cancel_indexing": {"job_id": NIL_UUID},
        "search_code": {"query": SEED_QUERY, "project_id": SEED_PROJECT},
        "list_projects": {},
        "delete_project": {"project_id": "no-such-project"},
    }[tool]


@dataclass(frozen=True)
class Case:
    tool: str
    arguments: dict[str, Any]
    label: str
    may_succeed: bool = False  # read-only tool, odd but valid input


def values_for(param: str) -> list[tuple[str, Any]]:
    strings = [("nul", v) for v in NUL] + [("unicode", v) for v in UNICODE]
    strings += [("huge", v) for v in HUGE_TEXT]
    typed = [("wrong-type", v) for v in WRONG_TYPES] + [("deep", DEEP), ("deep", DEEP_DICT)]
    if param in ("repo_path", "directory"):
        return [("path", v) for v in PATHS] + strings + typed
    if param == "project_id":
        return [("id", v) for v in IDS] + strings + typed
    if param == "job_id":
        return [("job-id", v) for v in JOB_IDS] + strings + typed + [("int", 5)]
    if param == "limit":
        return [("int", v) for v in INTEGERS] + [
            ("wrong-type", v) for v in ["ten", "", *WRONG_TYPES]
        ]
    if param == "force_reindex":
        return [("wrong-type", v) for v in ["maybe", 2, -1, *WRONG_TYPES]]
    if param == "repo_url":  # the server allows no git host: every URL is refused
        return (
            [("url", v) for v in GIT_URLS]
            + strings
            + [("wrong-type", v) for v in WRONG_TYPES if v is not None]
        )
    if param == "ref":  # with repo_path: refused whatever it is (None is valid: no ref)
        texts = ["", "main", "-x", "main..", "refs/../x", "@{-1}", "HEAD~1", "a b"]
        return (
            [("text", v) for v in texts]
            + strings
            + [("wrong-type", v) for v in WRONG_TYPES if v is not None]
        )
    if param == "watch":  # true, false or unset (None is valid: "leave it as it is")
        return [("wrong-type", v) for v in ["maybe", 2, -1, *WRONG_TYPES] if v is not None]
    if param == "detail":  # only "compact" and "full", exactly
        texts = ["", " ", "FULL", "Compact", "full ", "short", "*", "compact,full"]
        return [("text", v) for v in texts] + strings + typed
    if param in ("query", "file_type"):
        return [("text", v) for v in ["", " ", "\t\n", "*", "%", "' OR 1=1 --"]] + strings + typed
    raise AssertionError(f"no hostile values for parameter {param}")


ODD_BUT_VALID = {"unicode", "text", "path", "huge"}
UNUSABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # NUL and other controls


def may_succeed(tool: str, param: str, label: str, value: Any) -> bool:
    """Valid input that is merely odd (a unicode query, a blank file_type, a relative
    directory): the read-only search may answer it. Everything else must be refused."""
    if tool != "search_code" or param not in ("query", "directory", "file_type"):
        return False
    if value is None:
        return param != "query"  # the filters are optional
    return label in ODD_BUT_VALID and isinstance(value, str) and not UNUSABLE.search(value)


def table_cases(stack: Stack) -> list[Case]:
    cases = []
    for tool, params in TOOLS.items():
        base = valid_arguments(tool, stack)
        for param in sorted(params):
            for label, value in values_for(param):
                arguments = {**base, param: value}
                if param == "repo_url":  # alone: with repo_path it is refused as "not both"
                    arguments.pop("repo_path")
                ok = may_succeed(tool, param, label, value)
                cases.append(Case(tool, arguments, f"{tool}.{param} {label}", ok))
        # the shape of the call itself
        for name, extra in [("extra", {"unexpected": 1}), ("nul-name", {"a\x00": 1})]:
            cases.append(Case(tool, {**base, **extra}, f"{tool} {name} argument"))
        required = [p for p in params if p in ("repo_path", "job_id", "query")]
        if tool == "delete_project":
            required = ["project_id"]
        for param in required:
            missing = {k: v for k, v in base.items() if k != param}
            cases.append(Case(tool, missing, f"{tool} without {param}"))
    for name in ["", "../search_code", "search_code\x00", "SEARCH_CODE", "a" * 10_000]:
        cases.append(Case(name, {}, f"unknown tool {name[:20]!r}"))
    return cases


def check(stack: Stack, case: Case, outcome: Outcome) -> None:
    where = f"{case.label}: {json.dumps(case.arguments)[:200]}"
    assert stack.served.process.poll() is None, f"the server died on {where}"
    if outcome.kind == "ok":
        assert case.may_succeed, f"accepted: {where} -> {outcome.text[:300]}"
        assert outcome.data is not None, f"no structured answer: {where}"
        return
    # A refusal says what is wrong: never an internal error or a traceback.
    assert outcome.text.strip(), f"an empty error for {where}"
    assert "Traceback" not in outcome.text, f"{where} -> {outcome.text[:500]}"
    assert "Internal error" not in outcome.text, f"{where} -> {outcome.text[:500]}"
    if outcome.kind == "tool_error":
        assert "the database failed" not in outcome.text, f"{where} -> {outcome.text[:500]}"


def test_a_table_of_hostile_values_for_every_parameter_of_every_tool(stack: Stack) -> None:
    cases = table_cases(stack)
    kinds: dict[str, int] = {}
    # HOSTILE_INPUT_LOG=FILE writes every case and its answer there, to read them all.
    trail = os.environ.get("HOSTILE_INPUT_LOG")
    lines = []
    for case in cases:
        outcome = stack.session.call(case.tool, case.arguments)
        lines.append(f"{case.label}\t{outcome.kind}\t{' '.join(outcome.text.split())[:160]}")
        check(stack, case, outcome)
        kinds[outcome.kind] = kinds.get(outcome.kind, 0) + 1
    if trail:
        Path(trail).write_text("\n".join(lines) + "\n")
    stack.counts["table"] = len(cases)
    print(f"\nhostile-input table: {len(cases)} cases over {len(TOOLS)} tools: {kinds}")
    assert len(cases) > 400
    assert stack.health()["status"] == "ok"


# --- Hypothesis ----------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=300),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=4)
    ),
    max_leaves=12,
)
PATH_PARTS = st.sampled_from(
    ["..", ".", "", "repo", "link-out", "link-proc", "link-etc", "fifo", "file.txt", "proc",
     "self", "environ", "etc", "%2e%2e", "\x00", "é", "code"]
)  # fmt: skip
PATHS_ST = st.tuples(
    st.sampled_from(["/", HOST_ROOT + "/", "", "/proc/", "../"]),
    st.lists(PATH_PARTS, max_size=6).map("/".join),
).map("".join)
HYPOTHESIS_EXAMPLES = 100


def legit_repo_path(path: str) -> bool:
    """A path that names the seed repository or the root itself: real indexing, not hostile."""
    normal = posixpath.normpath(path) if path.startswith("/") else ""
    return normal in (HOST_ROOT, SEED_REPO) or normal.startswith(SEED_REPO + "/")


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_hypothesis_any_json_in_any_parameter(stack: Stack, tool: str) -> None:
    params = sorted(TOOLS[tool]) or ["unexpected"]
    ran = [0]

    @settings(
        max_examples=HYPOTHESIS_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(param=st.sampled_from(params), value=JSON_VALUES | PATHS_ST, data=st.data())
    def run(param: str, value: Any, data: st.DataObject) -> None:
        if param in ("repo_path", "directory") and data.draw(st.booleans()):
            value = data.draw(PATHS_ST)
        if param == "repo_path":
            assume(not (isinstance(value, str) and legit_repo_path(value)))
        if param == "project_id" and tool == "delete_project":
            assume(value != SEED_PROJECT)
        arguments = {**valid_arguments(tool, stack), param: value}
        outcome = stack.session.call(tool, arguments)
        ran[0] += 1
        assert stack.served.process.poll() is None, f"the server died on {arguments!r}"[:300]
        if outcome.kind == "ok":
            # only a read-only tool may answer; a writing tool answering "ok" wrote something
            assert tool in READ_ONLY, f"{tool} accepted {arguments!r}"[:300]
            assert outcome.data is not None
        else:
            assert "Traceback" not in outcome.text, outcome.text[:500]
            assert "the database failed" not in outcome.text, outcome.text[:500]

    run()
    stack.counts[f"hypothesis {tool}"] = ran[0]
    print(f"\nhostile-input hypothesis {tool}: {ran[0]} cases")
    assert ran[0] >= HYPOTHESIS_EXAMPLES // 2


# --- raw JSON-RPC ------------------------------------------------------------------


def open_session(url: str) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"},
        },
    }
    response = httpx.post(f"{url}/mcp", json=init, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    headers = {
        **headers,
        "mcp-session-id": response.headers["mcp-session-id"],
        "mcp-protocol-version": "2025-06-18",
    }
    done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    httpx.post(f"{url}/mcp", json=done, headers=headers, timeout=10)
    return headers


def call_body(arguments: str, name: str = "search_code") -> bytes:
    params = f'{{"name":"{name}","arguments":{arguments}}}'
    return f'{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{params}}}'.encode()


RAW_BODIES: list[tuple[str, bytes]] = [
    ("nesting 100k deep", call_body('{"query":' + "[" * 100_000 + "]" * 100_000 + "}")),
    (
        "nesting 100k deep dicts",
        call_body('{"query":' + '{"a":' * 100_000 + "1" + "}" * 100_000 + "}"),
    ),
    ("NaN", call_body('{"query":"x","limit":NaN}')),
    ("Infinity", call_body('{"query":"x","limit":Infinity}')),
    ("lone surrogate escape", call_body('{"query":"\\ud800"}')),
    (
        "reversed surrogates",
        call_body('{"repo_path":"/home/someone/code/\\udfff\\ud800"}', "start_indexing_background"),
    ),
    ("NUL escape", call_body('{"query":"a\\u0000b"}')),
    ("invalid UTF-8", call_body('{"query":"UTF"}').replace(b"UTF", b"\xff\xfe\xc3(")),
    (
        "raw invalid bytes",
        b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search_code","arguments":{"query":"\xff\xfe\x00"}}}',
    ),
    ("truncated JSON", call_body('{"query":"x"')),
    ("not JSON", b"\x00\x01\x02 hello"),
    ("empty body", b""),
    ("a JSON string", b'"tools/call"'),
    ("an empty batch", b"[]"),
    ("a batch of calls", b"[" + b",".join([call_body('{"query":"x"}')] * 50) + b"]"),
    (
        "params as a list",
        b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":["search_code"]}',
    ),
    ("arguments as a list", call_body('["x"]')),
    ("arguments as a string", call_body('"x"')),
    ("unknown method", b'{"jsonrpc":"2.0","id":7,"method":"../../admin","params":{}}'),
    ("huge id", b'{"jsonrpc":"2.0","id":' + b"9" * 5000 + b',"method":"tools/list"}'),
    ("duplicate keys", call_body('{"query":"x","query":["y"]}')),
    ("5 MiB body", call_body(json.dumps({"query": "a" * (5 * 1024 * 1024)}))),
]


def test_raw_json_rpc_bodies_are_refused_and_the_server_stays_up(stack: Stack) -> None:
    headers = open_session(stack.served.url)
    seen: list[str] = []
    for label, body in RAW_BODIES:
        response = httpx.post(f"{stack.served.url}/mcp", content=body, headers=headers, timeout=60)
        assert stack.served.process.poll() is None, f"the server died on {label}"
        text = response.text
        seen.append(f"{label}\t{response.status_code}\t{' '.join(text.split())[:200]}")
        # Either an HTTP refusal (400/413/...) or a JSON-RPC error / tool error: never a result.
        if response.status_code == 200:
            assert '"error"' in text or '"isError":true' in text, f"{label}: {text[:300]}"
        else:
            assert 400 <= response.status_code < 500, (
                f"{label}: {response.status_code} {text[:300]}"
            )
        assert "Traceback" not in text, f"{label}: {text[:500]}"
    trail = os.environ.get("HOSTILE_INPUT_LOG")
    if trail:
        with open(trail, "a") as handle:
            handle.write("\n".join(seen) + "\n")
    stack.counts["raw"] = len(RAW_BODIES)
    print(f"\nhostile-input raw JSON-RPC: {len(RAW_BODIES)} bodies")
    assert stack.health()["status"] == "ok"


# --- after everything --------------------------------------------------------------


def test_zz_nothing_was_written_and_the_server_still_works(stack: Stack) -> None:
    """Runs last (zz): compares the database with its state right after the seed index."""
    assert stack.counts, "run the whole module: the passes above fill the counts"
    before = stack.before
    after = asyncio.run(table_digests(stack.dsn))
    assert after == before, {
        k: (before.get(k), after.get(k)) for k in after if after[k] != before.get(k)
    }
    assert stack.health()["status"] == "ok"
    found = stack.session.call("search_code", {"query": SEED_QUERY, "project_id": SEED_PROJECT})
    assert found.kind == "ok" and "config_loader.py" in found.text
    log = stack.served.log_text()
    assert "Traceback" not in log, log[log.find("Traceback") - 2000 : log.find("Traceback") + 3000]
    assert " ERROR " not in log
    total = sum(stack.counts.values())
    print(f"\nhostile-input pass: {total} cases in all: {stack.counts}")
