"""The tool registry (server/tools.py) is exactly what the server registers, and the CLI's
hint after `up` names tools from it."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys

from codebase_mcp.pod.clientconfig import instructions
from codebase_mcp.server import tools
from codebase_mcp.server.app import ServerState, create_server
from codebase_mcp.server.config import ServerSettings
from codebase_mcp.server.embeddings import OllamaEmbedder
from codebase_mcp.settings import DatabaseSettings


def registered() -> set[str]:
    state = ServerState(
        ServerSettings(workers=0),
        DatabaseSettings(url="postgresql://nobody@127.0.0.1:1/none"),
        OllamaEmbedder("http://127.0.0.1:1", "all-minilm"),
    )
    server = create_server(state)
    return {tool.name for tool in asyncio.run(server.list_tools())}


def test_the_registry_is_what_the_server_registers() -> None:
    assert set(tools.TOOLS) == registered()
    assert len(tools.TOOLS) == len(set(tools.TOOLS))


def test_the_hint_after_up_names_only_registered_tools() -> None:
    text = instructions("http://127.0.0.1:8000/mcp", "pod-server", ["/src/app"])
    hint = text.split("Index a repository", 1)[1]
    named = set(re.findall(r"\b[a-z]+(?:_[a-z]+)+\b", hint))
    assert tools.START_INDEXING in named and tools.SEARCH in named
    assert named <= set(tools.TOOLS), named - set(tools.TOOLS)


def test_naming_the_tools_does_not_import_the_server() -> None:
    code = (
        "import sys, codebase_mcp.pod.clientconfig; "
        "print(any(m == 'fastmcp' or m.startswith('fastmcp.') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_serve_help_lists_exactly_the_registered_tools() -> None:
    from codebase_mcp.cli.serve import serve

    listed = (serve.help or "").split("(tools:", 1)[1].split(")", 1)[0]
    assert sorted(name.strip() for name in listed.split(",")) == sorted(tools.TOOLS)
