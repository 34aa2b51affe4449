"""Where the CPU went during a phase: core-seconds per kind of process, from /proc.

A load benchmark on a 2-core host is bound by CPU shared by every process in it
(server, embedder, Postgres, the benchmark's own clients). Latencies say how
long a search waited; this says who used the cores meanwhile, which is what a
change has to cut. Linux only; processes that end during the phase are missed
(their last ticks are lost), those that start count from zero.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    kind: str
    ticks: int  # utime + stime, in clock ticks


def kind_of(pid: int, comm: str, cmdline: str) -> str:
    """The kind of a process, from its name and command line (pure)."""
    if pid == os.getpid():
        return "bench_clients"
    if comm.startswith("postgres") or cmdline.startswith("postgres:"):
        return "postgres"
    if "codebase_mcp.embedder" in cmdline or "embedder serve" in cmdline:
        return "embedder"
    if (
        " serve --transport" in cmdline
        or "codebase_mcp.cli" in cmdline
        or "codebase-mcp serve" in cmdline
    ):
        return "server"
    return "other"


def _stat(pid: int) -> tuple[str, int] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm is in parentheses and may hold spaces: split after the last ')'.
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    return comm, int(fields[11]) + int(fields[12])  # utime, stime


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline")
            .read_bytes()
            .replace(b"\0", b" ")
            .decode("utf-8", "replace")
        )
    except OSError:
        return ""


def snapshot() -> dict[int, Sample]:
    out: dict[int, Sample] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        stat = _stat(pid)
        if stat is None:
            continue
        comm, ticks = stat
        out[pid] = Sample(kind_of(pid, comm, _cmdline(pid)), ticks)
    return out


def core_seconds(before: dict[int, Sample], after: dict[int, Sample]) -> dict[str, float]:
    """Core-seconds used between two snapshots, per kind (pure)."""
    used: dict[str, int] = {}
    for pid, sample in after.items():
        start = before.get(pid)
        base = start.ticks if start is not None and start.kind == sample.kind else 0
        used[sample.kind] = used.get(sample.kind, 0) + max(0, sample.ticks - base)
    return {kind: round(ticks / TICKS, 2) for kind, ticks in sorted(used.items())}


def per_search_ms(
    seconds: dict[str, float], searches: int, kinds: Iterable[str]
) -> dict[str, float]:
    """Core-milliseconds per search of each kind (pure)."""
    if searches <= 0:
        return {}
    return {kind: round(seconds.get(kind, 0.0) * 1000 / searches, 1) for kind in kinds}
