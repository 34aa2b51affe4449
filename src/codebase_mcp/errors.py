"""One home for every failure the tool reports.

Each class is one kind of failure with its own exit code. Code deep in the
package raises these; only ``codebase_mcp.cli.main`` catches them, prints the
message and the hint, and exits with ``exit_code``. Tracebacks only with
``--debug``. Keep this module stdlib-only: the builder's bootstrap imports it.
"""

from __future__ import annotations


class CodebaseMcpError(Exception):
    """Base class: a message for the user, a hint saying what to do, an exit code."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


# --- usage and configuration -------------------------------------------------
class UsageError(CodebaseMcpError):
    """The command line or a value given to it is wrong."""

    exit_code = 2


class ConfigError(CodebaseMcpError):
    """A configuration file or environment setting is invalid."""

    exit_code = 2


# --- host and processes ------------------------------------------------------
class ToolMissing(CodebaseMcpError):
    """A host program the command needs is not installed."""

    exit_code = 4


class CommandFailed(CodebaseMcpError):
    """A host program ran and failed."""

    exit_code = 5

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        returncode: int = 1,
        stderr: str = "",
    ) -> None:
        super().__init__(message, hint=hint)
        self.returncode = returncode
        self.stderr = stderr


class HostCheckFailed(CodebaseMcpError):
    """``doctor`` found problems on this host."""

    exit_code = 6


# --- the builder -------------------------------------------------------------
class DefinitionError(CodebaseMcpError):
    """An image definition under images/ is invalid."""

    exit_code = 10


class UnknownImage(CodebaseMcpError):
    """An image name that has no definition."""

    exit_code = 11


class LockMissing(CodebaseMcpError):
    """The lock file does not exist."""

    exit_code = 12


class LockOutOfDate(CodebaseMcpError):
    """The lock does not match the image definitions."""

    exit_code = 13


class LockError(CodebaseMcpError):
    """Resolving inputs for the lock failed (mirror or index unreachable, ...)."""

    exit_code = 14


class FetchError(CodebaseMcpError):
    """Downloading an input into the store failed."""

    exit_code = 15


class HashMismatch(CodebaseMcpError):
    """An input's content does not have the hash the lock pins."""

    exit_code = 16


class TemplateError(CodebaseMcpError):
    """A Jinja2 template failed to render."""

    exit_code = 17


class BuildError(CodebaseMcpError):
    """Building an image failed."""

    exit_code = 18


class NotReproducible(CodebaseMcpError):
    """``image verify`` found a rebuild that differs from the stored build."""

    exit_code = 19


class ImageNotBuilt(CodebaseMcpError):
    """An image that a command needs has not been built."""

    exit_code = 20


class LayerCorrupt(CodebaseMcpError):
    """A cached layer's bytes do not match its sha256 (tampered or damaged), and it
    cannot be made again here."""

    exit_code = 21


class StoreFull(CodebaseMcpError):
    """The disk filled up while the store was being written; nothing half-written was kept."""

    exit_code = 22


class SubstituteMismatch(CodebaseMcpError):
    """An image pulled from a substituter is not the one its record pins (image ID or
    input hash differ): it was removed and not used."""

    exit_code = 23


# --- the pod -----------------------------------------------------------------
class PodError(CodebaseMcpError):
    """Bringing the pod up, down or asking its status failed."""

    exit_code = 30


class PodUnhealthy(CodebaseMcpError):
    """The pod did not become healthy in time."""

    exit_code = 31


class CredentialFileError(CodebaseMcpError):
    """A credential file given to the pod (git SSH key, token, known_hosts) is unusable."""

    exit_code = 32


# --- publishing --------------------------------------------------------------
class PublishError(CodebaseMcpError):
    """Pushing images or writing their SBOM failed."""

    exit_code = 40


class SbomMismatch(CodebaseMcpError):
    """The image's installed packages do not match its lock."""

    exit_code = 41


class NotAnIndexArtifact(CodebaseMcpError):
    """The reference names something that is not a codebase-mcp index artifact."""

    exit_code = 42


class ArtifactDigestMismatch(CodebaseMcpError):
    """A pulled blob or manifest does not hash to the digest that names it."""

    exit_code = 43


class AuthFileMissing(CodebaseMcpError):
    """REGISTRY_AUTH_FILE (or --authfile) names a file that does not exist."""

    exit_code = 44


# --- runtime (server, init, embedder) ---------------------------------------
class DependencyTimeout(CodebaseMcpError):
    """A dependency (Postgres, embedder) did not become ready before the deadline."""

    exit_code = 3


class DatabaseTimeout(DependencyTimeout):
    """``init``: Postgres was not ready (connect, auth, SELECT 1, pgvector) before the deadline."""

    exit_code = 3


class EmbedderTimeout(DependencyTimeout):
    """``init``: the embedder (Ollama API) or its model was not ready before the deadline."""

    exit_code = 9


class ChildStartFailed(CodebaseMcpError):
    """``init``: the command after ``--`` could not be started (not found, not executable)."""

    exit_code = 127


class MigrationFailed(CodebaseMcpError):
    """``alembic upgrade head`` failed."""

    exit_code = 7


class HealthCheckFailed(CodebaseMcpError):
    """``codebase-mcp health`` found the server or its database not healthy."""

    exit_code = 8


# --- the embedder ------------------------------------------------------------
class ModelFilesError(CodebaseMcpError):
    """The embedder's model directory is missing, incomplete or not a supported model."""

    exit_code = 50


class EmbedderProbeFailed(CodebaseMcpError):
    """``codebase-mcp embedder probe`` found the embedder down or without the model."""

    exit_code = 51


# --- the server (semantic search) ---------------------------------------------
class InvalidToolInput(CodebaseMcpError):
    """A tool argument is invalid (empty query, limit out of range, bad id...)."""

    exit_code = 60


class PathNotAllowed(CodebaseMcpError):
    """A repository path does not exist, is not a directory or lies outside the allowed roots."""

    exit_code = 61


class NotFound(CodebaseMcpError):
    """An unknown project or job."""

    exit_code = 62


class EmbeddingModelMismatch(CodebaseMcpError):
    """A project was indexed with another embedding model or dimension than the server uses."""

    exit_code = 63


class EmbedderError(CodebaseMcpError):
    """The embedder is unreachable or answered with an error."""

    exit_code = 64


class EmbedderUnavailable(EmbedderError):
    """No embedder endpoint is reachable and healthy (after probing every one of them)."""

    exit_code = 65


class EmbedderModelMix(EmbedderError):
    """The embedder endpoints serve the model under different weights (digests differ)."""

    exit_code = 66


# --- git sources (the server's repo_url/ref inputs) ----------------------------
class GitSourceError(CodebaseMcpError):
    """Fetching a git source failed (the base of the git-source errors; also a broken cache)."""

    exit_code = 70


class InvalidGitSource(GitSourceError):
    """A git URL or ref is malformed, local, uses a refused transport or carries credentials."""

    exit_code = 71


class GitHostNotAllowed(GitSourceError):
    """A git URL's host or protocol is not in CODEBASE_MCP_GIT_HOSTS / _GIT_PROTOCOLS."""

    exit_code = 72


class GitUnreachable(GitSourceError):
    """A git server did not answer (DNS, connection, timeout) or has no such repository."""

    exit_code = 73


class GitRefNotFound(GitSourceError):
    """A branch, tag or commit that the repository does not have."""

    exit_code = 74


class GitAuthFailed(GitSourceError):
    """A git server refused the credentials (or asked for some and none were configured)."""

    exit_code = 75


# --- shareable indexes (index export / import) ----------------------------------
class IndexFileCorrupt(CodebaseMcpError):
    """An index file is truncated, damaged, or not an index file of this version."""

    exit_code = 80


class IndexModelMismatch(CodebaseMcpError):
    """An index file was made with other weights than the configured embedder's."""

    exit_code = 81


class IndexImportBusy(CodebaseMcpError):
    """Another import of the same project is running."""

    exit_code = 82


class IndexProjectExists(CodebaseMcpError):
    """The project an import would create exists already (and --replace was not given)."""

    exit_code = 83


class IndexNotExportable(CodebaseMcpError):
    """A project cannot be exported (unknown, still embedding, or no model identity)."""

    exit_code = 84
