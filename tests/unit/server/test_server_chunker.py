"""Chunking along syntax boundaries, with line windows as the fallback."""

from __future__ import annotations

import pytest

from codebase_mcp.server.chunker import Chunk, Chunker, identifier_words, language_for


def covered_lines(chunks: list[Chunk]) -> list[int]:
    return [n for c in chunks for n in range(c.start_line, c.end_line + 1)]


def big_python_class(methods: int = 12) -> str:
    body = "\n".join(
        f"    def method_{i}(self, value):\n"
        + "".join(f"        value = value + {j}  # step {j} of method {i}\n" for j in range(8))
        + "        return value\n"
        for i in range(methods)
    )
    head = 'import os\n\n\nclass BigService:\n    """A big class."""\n\n'
    return f"{head}{body}\n\ndef tail():\n    return 1\n"


def test_big_class_is_cut_at_methods_without_duplicates() -> None:
    source = big_python_class()
    chunks = Chunker(max_chars=600, min_chars=0).chunk("svc.py", source)
    symbols = [c.symbol for c in chunks]
    assert "BigService.method_0" in symbols
    assert "BigService.method_11" in symbols
    assert "tail" in symbols
    lines = covered_lines(chunks)
    assert len(lines) == len(set(lines)), "a line was embedded twice"
    method = next(c for c in chunks if c.symbol == "BigService.method_3")
    assert method.content.lstrip().startswith("def method_3(")
    assert method.content.rstrip().endswith("return value")
    assert all(len(c.content) <= 600 for c in chunks)
    # Every non-blank line is in some chunk.
    numbered = [i for i, line in enumerate(source.splitlines(), 1) if line.strip()]
    assert set(numbered) <= set(lines)


def test_small_class_is_one_chunk() -> None:
    source = (
        "class Small:\n    def a(self):\n        return 1\n\n    def b(self):\n        return 2\n"
    )
    chunks = Chunker(max_chars=1000, min_chars=0).chunk("s.py", source)
    assert [(c.symbol, c.start_line, c.end_line) for c in chunks] == [("Small", 1, 6)]


@pytest.mark.parametrize(
    ("path", "source", "symbol"),
    [
        ("a.js", "function startServer(port) {\n  return port;\n}\n", "startServer"),
        (
            "a.ts",
            "export function parseArgs(argv: string[]): number {\n  return 1;\n}\n",
            "parseArgs",
        ),
        ("a.tsx", "const View = () => <div>hi</div>;\n", "View"),
        ("a.go", "package main\n\nfunc computeSum(a int) int {\n\treturn a\n}\n", "computeSum"),
        ("a.rs", "fn tokenize(s: &str) -> usize {\n    s.len()\n}\n", "tokenize"),
        (
            "A.java",
            "class Greeter {\n  String greet(String n) { return n; }\n}\n",
            "Greeter",
        ),
        ("a.py", "@decorator\ndef handler(event):\n    return event\n", "handler"),
    ],
)
def test_languages_yield_named_definitions(path: str, source: str, symbol: str) -> None:
    chunks = Chunker(max_chars=1000, min_chars=0).chunk(path, source)
    assert symbol in [c.symbol for c in chunks], chunks


def test_unknown_language_uses_line_windows_under_the_cap() -> None:
    text = "\n".join(f"key_{i}: value number {i}" for i in range(200))
    chunks = Chunker(max_chars=500, window_lines=40).chunk("conf.yaml", text)
    assert len(chunks) > 5
    assert all(len(c.content) <= 500 for c in chunks)
    assert all(c.end_line - c.start_line < 40 for c in chunks)
    assert covered_lines(chunks) == list(range(1, 201))


def test_one_huge_line_is_cut() -> None:
    chunks = Chunker(max_chars=300).chunk("min.txt", "x" * 5000)
    assert len(chunks) == 1 and len(chunks[0].content) == 300


def test_tiny_neighbours_are_merged() -> None:
    source = "".join(f"def f{i}():\n    return {i}\n\n" for i in range(5))
    chunks = Chunker(max_chars=1000, min_chars=200).chunk("t.py", source)
    assert len(chunks) == 1
    assert chunks[0].symbol == "f0, f1, f2, f3, f4"


def test_blank_input() -> None:
    assert Chunker().chunk("a.py", "") == []
    assert Chunker().chunk("a.txt", "\n\n  \n") == []


def test_language_for() -> None:
    assert language_for("src/a.py") == "python"
    assert language_for("x/Y.JAVA") == "java"
    assert language_for("Makefile") == "make"
    assert language_for(".bashrc") is None
    assert language_for("notes") is None


def test_identifier_words_split_snake_and_camel() -> None:
    words = identifier_words("parse_config_file HTTPServerError getX").split()
    assert {"parse_config_file", "parse", "config", "file"} <= set(words)
    assert {"httpservererror", "http", "server", "error"} <= set(words)


def test_absurdly_deep_nesting_falls_back_to_windows() -> None:
    source = "x = " + "[" * 5000 + "]" * 5000 + "\ndef after():\n    return 1\n"
    chunks = Chunker(max_chars=500).chunk("deep.py", source)
    assert chunks and chunks[-1].end_line == 3


def _reference_lexical_words(text: str) -> list[str]:
    """lexical_words as it was before identifiers were cached (the index must not move)."""
    from codebase_mcp.server.chunker import _CAMEL, _IDENTIFIER, CODE_STOP_WORDS

    out: list[str] = []
    for ident in _IDENTIFIER.findall(text):
        parts = [p.lower() for segment in ident.split("_") for p in _CAMEL.findall(segment)]
        parts = [p for p in parts if len(p) > 1 and not p.isdigit()]
        whole = "".join(parts)
        if len(whole) > 1 and whole not in CODE_STOP_WORDS:
            out.append(whole)
        if len(parts) > 1:
            out.extend(p for p in parts if p not in CODE_STOP_WORDS)
    return out


def test_cached_identifiers_give_the_same_lexical_words_on_real_code() -> None:
    from pathlib import Path

    from codebase_mcp.server.chunker import lexical_words

    root = Path(__file__).resolve().parents[3] / "src"
    files = sorted(root.rglob("*.py"))
    assert len(files) > 50
    for path in files:
        text = path.read_text()
        assert lexical_words(text) == _reference_lexical_words(text), path
        assert lexical_words(text) == _reference_lexical_words(text), path  # cached path


def _reference_identifier_words(text: str) -> str:
    """identifier_words as it was before identifiers were cached (queries and snippets
    must not move)."""
    from codebase_mcp.server.chunker import _CAMEL, _IDENTIFIER

    words: dict[str, None] = {}
    for ident in _IDENTIFIER.findall(text):
        words[ident.lower()] = None
        parts = [p for segment in ident.split("_") for p in _CAMEL.findall(segment)]
        if len(parts) > 1:
            for part in parts:
                words[part.lower()] = None
    return " ".join(words)


def test_cached_identifier_words_are_the_same_on_real_code() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[3] / "src"
    files = sorted(root.rglob("*.py"))
    assert len(files) > 50
    for path in files:
        text = path.read_text()
        for piece in (text, *text.splitlines()[:200]):
            assert identifier_words(piece) == _reference_identifier_words(piece), path
