"""Fetch, verify and unpack the evaluation's pinned repositories (eval/repos.toml).

    .venv/bin/python eval/fetch.py              # every repository, eval and bench
    .venv/bin/python eval/fetch.py click rxjs   # some of them

Archives go to the content-addressed store (CODEBASE_MCP_STORE, default
~/.cache/codebase-mcp/store); unpacked trees to CODEBASE_MCP_EVAL_CACHE
(default ~/.cache/codebase-mcp/eval). Prints the directory each one indexes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from codebase_mcp.errors import CodebaseMcpError
from codebase_mcp.evaluation.repos import checkout, load_pins, select

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="repositories (default: all)")
    parser.add_argument("--repos", type=Path, default=HERE / "repos.toml")
    args = parser.parse_args()
    try:
        for pin in select(load_pins(args.repos), args.names, None):
            root = checkout(pin)
            print(f"{pin.name:10s} {pin.version:8s} {root}")
    except CodebaseMcpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
