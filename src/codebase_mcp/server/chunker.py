"""Split a source file into chunks worth embedding.

Code in the six supported languages is parsed with tree-sitter and cut along
definitions (functions, classes, methods, impls...). A definition that fits the
size cap is one chunk; a bigger one is cut at the definitions inside it (a
class at its methods) and the code around them goes into line windows, so no
line is embedded twice (the original embedded a class *and* its methods).
Everything else (other languages, text, code between definitions) is cut into
line windows under the same cap. The cap matters: all-minilm reads 256 tokens,
and Ollama answers 400 for input longer than the model's context.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

LANGUAGE_BY_SUFFIX: dict[str, str] = {
    ".py": "python", ".pyi": "python", ".js": "javascript", ".mjs": "javascript",
    ".cjs": "javascript", ".jsx": "javascript", ".ts": "typescript", ".mts": "typescript",
    ".cts": "typescript", ".tsx": "tsx", ".go": "go", ".rs": "rust", ".java": "java",
    # Indexed as text (line windows), but with a language for the file_type filter.
    ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".hpp": "cpp", ".cs": "csharp",
    ".rb": "ruby", ".php": "php", ".kt": "kotlin", ".swift": "swift", ".scala": "scala",
    ".sh": "shell", ".bash": "shell", ".sql": "sql", ".md": "markdown", ".rst": "rst",
    ".txt": "text", ".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".json": "json",
    ".html": "html", ".css": "css", ".xml": "xml", ".ini": "ini", ".cfg": "ini",
}  # fmt: skip

# Node types that are a unit of meaning: one chunk when small enough.
DEFINITION_TYPES: dict[str, frozenset[str]] = {
    "python": frozenset({"function_definition", "class_definition", "decorated_definition"}),
    "javascript": frozenset(
        {"function_declaration", "generator_function_declaration", "class_declaration",
         "method_definition", "lexical_declaration", "export_statement"}
    ),
    "typescript": frozenset(
        {"function_declaration", "generator_function_declaration", "class_declaration",
         "abstract_class_declaration", "method_definition", "interface_declaration",
         "type_alias_declaration", "enum_declaration", "lexical_declaration",
         "export_statement", "module", "internal_module"}
    ),
    "go": frozenset(
        {"function_declaration", "method_declaration", "type_declaration"}
    ),
    "rust": frozenset(
        {"function_item", "impl_item", "struct_item", "enum_item", "trait_item", "mod_item",
         "macro_definition"}
    ),
    "java": frozenset(
        {"class_declaration", "interface_declaration", "enum_declaration", "record_declaration",
         "method_declaration", "constructor_declaration"}
    ),
}  # fmt: skip
DEFINITION_TYPES["tsx"] = DEFINITION_TYPES["typescript"]
# Containers worth looking into for definitions: a "lexical_declaration" is only a
# definition at top level (const f = () => ...), never inside a function body.
_TOP_LEVEL_ONLY = frozenset({"lexical_declaration"})

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


@dataclass(frozen=True)
class Chunk:
    start_line: int  # 1-based, inclusive
    end_line: int  # inclusive
    content: str
    symbol: str | None  # "Class.method" when the chunk is a definition


def language_for(path: str) -> str | None:
    dot = path.rfind(".")
    slash = path.rfind("/")
    if dot <= slash + 1:
        return {"Makefile": "make", "Dockerfile": "dockerfile"}.get(path[slash + 1 :])
    return LANGUAGE_BY_SUFFIX.get(path[dot:].lower())


def _load_language(name: str) -> Any:
    from tree_sitter import Language

    if name == "python":
        import tree_sitter_python as mod

        return Language(mod.language())
    if name == "javascript":
        import tree_sitter_javascript as js

        return Language(js.language())
    if name in ("typescript", "tsx"):
        import tree_sitter_typescript as ts

        return Language(ts.language_tsx() if name == "tsx" else ts.language_typescript())
    if name == "go":
        import tree_sitter_go as go

        return Language(go.language())
    if name == "rust":
        import tree_sitter_rust as rs

        return Language(rs.language())
    if name == "java":
        import tree_sitter_java as java

        return Language(java.language())
    raise KeyError(name)


_languages: dict[str, Any] = {}
_languages_lock = threading.Lock()
_local = threading.local()  # parsers are not thread-safe: one per thread and language


def _parser(name: str) -> Any:
    from tree_sitter import Parser

    parsers: dict[str, Any] = getattr(_local, "parsers", None) or {}
    _local.parsers = parsers
    if name not in parsers:
        with _languages_lock:
            if name not in _languages:
                _languages[name] = _load_language(name)
        parsers[name] = Parser(_languages[name])
    return parsers[name]


def _node_name(node: Any) -> str | None:
    named = node.child_by_field_name("name")
    if named is None:
        inner = node.child_by_field_name("definition") or node.child_by_field_name("declaration")
        if inner is not None:
            return _node_name(inner)
        if node.type == "lexical_declaration":
            for child in node.named_children:
                if child.type == "variable_declarator":
                    return _node_name(child)
        if node.type in ("impl_item",):
            typ = node.child_by_field_name("type")
            return typ.text.decode("utf-8", "replace") if typ is not None else None
        if node.type == "type_declaration":
            for child in node.named_children:
                if child.type == "type_spec":
                    return _node_name(child)
        return None
    text: str = named.text.decode("utf-8", "replace")
    return text


class Chunker:
    def __init__(self, *, max_chars: int = 1200, window_lines: int = 40, min_chars: int = 200):
        self.max_chars = max_chars
        self.window_lines = window_lines
        self.min_chars = min_chars

    # -- public ---------------------------------------------------------------
    def chunk(self, path: str, text: str) -> list[Chunk]:
        language = language_for(path)
        lines = text.splitlines()
        if not lines:
            return []
        pieces: list[Chunk] = []
        if language in DEFINITION_TYPES:
            try:
                tree = _parser(language).parse(text.encode("utf-8"))
            except (ValueError, RuntimeError):  # give up on syntax: windows still work
                tree = None
            if tree is not None:
                defs = DEFINITION_TYPES[language]
                try:
                    self._split(tree.root_node, 0, len(lines) - 1, lines, defs, None, pieces, True)
                    return self._merge_small(pieces)
                except RecursionError:  # absurdly deep nesting (bundled code): use windows
                    pieces = []
        self._windows(lines, 0, len(lines) - 1, None, pieces)
        return self._merge_small(pieces)

    # -- syntax-aware ---------------------------------------------------------
    def _find_defs(self, node: Any, defs: frozenset[str], top: bool) -> list[Any]:
        found: list[Any] = []
        for child in node.named_children:
            if child.type in defs and (top or child.type not in _TOP_LEVEL_ONLY):
                found.append(child)
            elif child.named_child_count:
                found.extend(self._find_defs(child, defs, top=False))
        return found

    def _split(
        self,
        node: Any,
        first: int,
        last: int,
        lines: list[str],
        defs: frozenset[str],
        symbol: str | None,
        out: list[Chunk],
        is_root: bool,
    ) -> None:
        size = sum(len(line) + 1 for line in lines[first : last + 1])
        if size <= self.max_chars and not is_root:
            self._emit(lines, first, last, symbol, out)
            return
        children = [
            child
            for child in self._find_defs(node, defs, top=is_root)
            if child.start_point.row >= first and child.end_point.row <= last
        ]
        if not children:
            self._windows(lines, first, last, symbol, out)
            return
        cursor = first
        for child in children:
            start, end = child.start_point.row, child.end_point.row
            if start < cursor:  # two definitions on one line: keep the first's cut
                continue
            if start > cursor:
                self._windows(lines, cursor, start - 1, symbol, out)
            name = _node_name(child)
            child_symbol = f"{symbol}.{name}" if symbol and name else (name or symbol)
            self._split(child, start, end, lines, defs, child_symbol, out, False)
            cursor = end + 1
        if cursor <= last:
            self._windows(lines, cursor, last, symbol, out)

    # -- line windows ---------------------------------------------------------
    def _windows(
        self, lines: list[str], first: int, last: int, symbol: str | None, out: list[Chunk]
    ) -> None:
        start = first
        while start <= last:
            end, size = start, 0
            while end <= last and end - start < self.window_lines:
                size += len(lines[end]) + 1
                if size > self.max_chars and end > start:
                    break
                end += 1
            self._emit(lines, start, end - 1, symbol, out)
            start = end

    def _emit(
        self, lines: list[str], first: int, last: int, symbol: str | None, out: list[Chunk]
    ) -> None:
        # Trim blank edges; a window of blank lines is not worth a vector.
        while first <= last and not lines[first].strip():
            first += 1
        while last >= first and not lines[last].strip():
            last -= 1
        if first > last:
            return
        content = "\n".join(lines[first : last + 1])
        if len(content) > self.max_chars:  # one huge line (minified, data): cut it
            content = content[: self.max_chars]
        out.append(Chunk(first + 1, last + 1, content, symbol))

    def _merge_small(self, pieces: list[Chunk]) -> list[Chunk]:
        """Join neighbouring tiny chunks (one-line constants, short getters) into one."""
        merged: list[Chunk] = []
        for piece in pieces:
            if merged:
                prev = merged[-1]
                joined = len(prev.content) + 1 + len(piece.content)
                small = len(prev.content) < self.min_chars or len(piece.content) < self.min_chars
                if small and joined <= self.max_chars and piece.start_line > prev.end_line:
                    gap = "\n" * (piece.start_line - prev.end_line)
                    symbols = [s for s in (prev.symbol, piece.symbol) if s]
                    symbol = ", ".join(dict.fromkeys(", ".join(symbols).split(", "))) or None
                    merged[-1] = Chunk(
                        prev.start_line, piece.end_line, prev.content + gap + piece.content, symbol
                    )
                    continue
            merged.append(piece)
        return merged


def identifier_words(text: str) -> str:
    """Identifiers and their parts (snake_case, camelCase) for full-text search."""
    return " ".join(identifier_word_list(text))


def identifier_word_list(text: str) -> list[str]:
    """The words of :func:`identifier_words`, in their order, each once."""
    return list(
        dict.fromkeys(w for ident in _IDENTIFIER.findall(text) for w in _ident_words(ident))
    )


@functools.lru_cache(maxsize=1 << 16)
def _ident_words(ident: str) -> tuple[str, ...]:
    """One identifier lower-cased, then its parts if it has several. Cached: the
    lines of a search's hits repeat identifiers, and splitting them was most of
    the server's own CPU per search (bench/results/search-load-cpu.json)."""
    parts = [p for segment in ident.split("_") for p in _CAMEL.findall(segment)]
    if len(parts) > 1:
        return (ident.lower(), *(part.lower() for part in parts))
    return (ident.lower(),)


# Words that say nothing about what code does (syntax, the receiver) and are in
# most chunks of their language: dropped from the lexical index and from queries
# (Postgres' english configuration then drops English stop-words and stems).
CODE_STOP_WORDS = frozenset(
    {
        "self",
        "cls",
        "this",
        "def",
        "return",
        "import",
        "const",
        "let",
        "var",
        "func",
        "fn",
        "pub",
        "function",
        "none",
        "null",
        "nil",
        "true",
        "false",
        "elif",
        "else",
        "class",
        "struct",
        "impl",
        "mut",
        "async",
        "await",
        "try",
        "except",
        "raise",
        "pass",
        "lambda",
        "package",
        "export",
        "public",
        "private",
        "static",
        "void",
        "new",
    }
)
_PATH_SPLIT = re.compile(r"[/._\-]+")


def lexical_words(text: str) -> list[str]:
    """The words BM25 indexes, with repetition (term frequency counts): every
    identifier whole (``parse_config`` -> ``parseconfig``: underscores go, so the
    text-search parser keeps it one word) and, when it has several, its parts
    (``parse``, ``config``; ``HTTPServer`` -> ``http``, ``server``). Lower case;
    code stop-words, single letters and numbers dropped."""
    out: list[str] = []
    for ident in _IDENTIFIER.findall(text):
        out.extend(_one_identifier_words(ident))
    return out


@functools.lru_cache(maxsize=1 << 16)
def _one_identifier_words(ident: str) -> tuple[str, ...]:
    """The words of one identifier (see :func:`lexical_words`). Cached: code
    repeats its identifiers, and splitting them was most of the time spent
    turning a chunk into its lexical text."""
    parts = [p.lower() for segment in ident.split("_") for p in _CAMEL.findall(segment)]
    parts = [p for p in parts if len(p) > 1 and not p.isdigit()]
    whole = "".join(parts)
    out = [whole] if len(whole) > 1 and whole not in CODE_STOP_WORDS else []
    if len(parts) > 1:
        out.extend(p for p in parts if p not in CODE_STOP_WORDS)
    return tuple(out)


def lexical_text(rel_path: str, symbol: str | None, content: str) -> str:
    """What a chunk's lexical index is computed from (``chunks.search_text``): the
    path's words and the symbol once each (a cheap path and symbol match signal),
    then the code's words."""
    words = lexical_words(" ".join(_PATH_SPLIT.split(rel_path)))
    if symbol:
        words += lexical_words(symbol)
    words += lexical_words(content)
    return " ".join(words)


def embedding_text(rel_path: str, chunk: Chunk) -> str:
    """What the model reads for a chunk: where it is, what it is, then the code."""
    header = rel_path if not chunk.symbol else f"{rel_path} {chunk.symbol}"
    return f"{header}\n{chunk.content}"


ChunkFn = Callable[[str, str], list[Chunk]]
