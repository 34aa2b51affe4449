"""The git cache: resolve a ref, fetch exactly that commit, hand back its files.

Layout under ``CODEBASE_MCP_GIT_CACHE``::

    mirrors/<key>.git    one bare mirror per canonical URL (key: sha256 of the URL)
    checkouts/<commit>/  the files of one commit, written once, never changed
    locks/<key>.lock     flock: one fetch per URL at a time, across processes
    tmp/                 work in progress; moved into place by rename()

Nothing half-made is ever visible: a first clone is built in ``tmp/`` and
renamed into ``mirrors/`` only when the commit is in it and checked out; a
checkout is renamed into ``checkouts/`` only when complete. A failed fetch into
an existing mirror updates no ref (git writes refs last). Fetches are shallow
(``--depth=1``): the tree is what gets indexed, and a later fetch of a moved
ref sends only the objects the mirror does not have (measured: 3 objects for a
one-file change).

Every git call goes through :mod:`codebase_mcp.proc` with a hermetic
environment (:mod:`.plan`), a timeout, and a redactor that hides the token.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from codebase_mcp.errors import (
    CommandFailed,
    ConfigError,
    GitRefNotFound,
    GitSourceError,
    GitUnreachable,
    InvalidGitSource,
)
from codebase_mcp.proc import Result, Runner
from codebase_mcp.server.gitsource import plan
from codebase_mcp.server.gitsource.plan import Change, GitConfig, Pick
from codebase_mcp.server.gitsource.urls import (
    RefSpec,
    Remote,
    check_allowed,
    parse_ref,
    parse_remote,
    redact,
)

log = logging.getLogger("codebase_mcp.server.gitsource")

_FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
STALE_TMP_SECONDS = 24 * 3600
# Waiting for another fetch of the same URL: it may run a few git calls, each
# with the timeout.
LOCK_WAIT_CALLS = 4


@dataclass(frozen=True)
class Resolved:
    """A ref resolved on the remote (``git ls-remote``), nothing fetched yet."""

    url: str  # canonical, credential-free: the form to store
    ref: str  # as asked, normalised ("HEAD" when none was given)
    ref_name: str | None  # the full ref it names (refs/heads/main); None for a commit id
    commit: str | None  # the full commit id; None for an abbreviated sha (known after fetch)


@dataclass(frozen=True)
class Checkout:
    """A commit's files in the cache, ready to index."""

    url: str  # canonical, credential-free: the form to store
    ref: str
    ref_name: str | None
    commit: str
    path: Path  # checkouts/<commit>: treat as read-only, shared by every project
    previous: str | None  # ``since`` if given, else the commit this ref had at the last fetch
    changes: tuple[Change, ...] | None  # previous -> commit; None: unknown (index everything)
    fetched: bool  # False: the commit was in the cache already, nothing was downloaded


def _git_dir(argv: list[str]) -> Path | None:
    """The repository a planned call works in (``git --git-dir DIR ...``)."""
    return Path(argv[2]) if argv[1:2] == ["--git-dir"] else None


class GitSources:
    """Resolve, fetch and check out git sources into the cache (thread- and process-safe)."""

    def __init__(
        self,
        config: GitConfig,
        runner: Runner | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.runner = runner or Runner()
        self.environ = os.environ if environ is None else environ

    # --- validation (pure, cheap: call it when a tool is called) ----------------
    def check(self, url: str, ref: str | None = None) -> tuple[Remote, RefSpec]:
        """Refuse a bad URL, a host or protocol not allowed, a malformed ref. No I/O."""
        remote = parse_remote(url)
        check_allowed(remote, self.config.hosts, self.config.protocols)
        return remote, parse_ref(ref)

    # --- resolve ---------------------------------------------------------------
    def resolve(self, url: str, ref: str | None = None) -> Resolved:
        """The commit ``ref`` names now (``git ls-remote``); a full sha is returned as is."""
        remote, spec = self.check(url, ref)
        if spec.kind == "sha":
            return Resolved(remote.url, spec.text, None, spec.text)
        token = self._token(remote)
        pick = self._ls_remote(remote, spec, token)
        if pick is not None:
            return Resolved(remote.url, spec.text, pick.ref_name, pick.commit)
        if spec.kind == "name-or-short-sha":
            return Resolved(remote.url, spec.text, None, None)
        raise self._no_such_ref(remote, spec)

    # --- fetch -----------------------------------------------------------------
    def fetch(
        self,
        url: str,
        ref: str | None = None,
        *,
        commit: str | None = None,
        since: str | None = None,
    ) -> Checkout:
        """Fetch the commit ``ref`` names (or ``commit``, pinned earlier) and check it out.

        ``commit``: a full sha from :meth:`resolve` (the tool resolves once, every
        replica fetches that commit, even after the branch moved). ``since``: the
        commit the project indexed last; the answer lists the paths that changed.
        """
        remote, spec = self.check(url, ref)
        for name, value in (("commit", commit), ("since", since)):
            if value is not None and not _FULL_SHA.fullmatch(value):
                raise InvalidGitSource(
                    f"{name}={value[:80]!r} is not a full commit id",
                    hint="pass the 40 (or 64) hex digits resolve() returned",
                )
        if spec.kind == "sha" and commit is not None and commit != spec.text:
            raise InvalidGitSource(
                f"ref {spec.text} and commit {commit} disagree", hint="pass one commit id"
            )
        token = self._token(remote)
        pick: Pick | None = None
        short: str | None = None
        if commit is not None:
            if spec.kind == "head" or spec.text.startswith("refs/"):
                pick = Pick("HEAD" if spec.kind == "head" else spec.text, commit)
        elif spec.kind == "sha":
            commit = spec.text
        else:
            pick = self._ls_remote(remote, spec, token)
            if pick is not None:
                commit = pick.commit
            elif spec.kind == "name-or-short-sha":
                short = spec.text
            else:
                raise self._no_such_ref(remote, spec)
        return self._materialise(remote, spec, pick, commit, short, since, token)

    def changed_paths(self, url: str, old: str, new: str) -> list[Change]:
        """The paths that differ between two commits already in the cache."""
        remote, _ = self.check(url)
        for value in (old, new):
            if not _FULL_SHA.fullmatch(value):
                raise InvalidGitSource(
                    f"{value[:80]!r} is not a full commit id", hint="pass 40 (or 64) hex digits"
                )
        mirror = self._mirror(remote)
        with self._locked(remote):
            for commit in (old, new):
                if not mirror.exists() or not self._has(mirror, commit):
                    raise GitRefNotFound(
                        f"commit {commit} of {remote} is not in the cache",
                        hint="fetch it first (GitSources.fetch)",
                    )
            return self._diff(mirror, old, new)

    # --- the work under the lock ---------------------------------------------------
    def _materialise(
        self,
        remote: Remote,
        spec: RefSpec,
        pick: Pick | None,
        commit: str | None,
        short: str | None,
        since: str | None,
        token: str | None,
    ) -> Checkout:
        mirror = self._mirror(remote)
        with self._locked(remote):
            self._sweep_tmp()
            existed = mirror.exists()
            work = mirror if existed else self._new_tmp("mirror-")
            try:
                if not existed:
                    self._local(plan.init_bare(self.config, work), "create the mirror")
                    (work / "description").write_text(remote.url + "\n")
                previous = since
                if previous is None and pick is not None and existed:
                    previous = self._peel(work, plan.tracking_ref(pick.ref_name))
                commit, fetched = self._fetch_into(work, remote, pick, commit, short, token)
                self._local(plan.update_ref(self.config, work, plan.pin_ref(commit), commit), "pin")
                if pick is not None:
                    tracking = plan.tracking_ref(pick.ref_name)
                    self._local(plan.update_ref(self.config, work, tracking, commit), "track")
                path = self._checkout(work, commit)
                changes: tuple[Change, ...] | None = None
                if previous == commit:
                    changes = ()
                elif previous is not None and self._has(work, previous):
                    changes = tuple(self._diff(work, previous, commit))
                if not existed:
                    work.rename(mirror)
            finally:
                if not existed:
                    shutil.rmtree(work, ignore_errors=True)
        log.info(
            "git source %s %s -> %s (%s)",
            remote,
            spec.text,
            commit,
            "fetched" if fetched else "cached",
        )
        return Checkout(
            url=remote.url,
            ref=spec.text,
            ref_name=pick.ref_name if pick else None,
            commit=commit,
            path=path,
            previous=previous,
            changes=changes,
            fetched=fetched,
        )

    def _fetch_into(
        self,
        mirror: Path,
        remote: Remote,
        pick: Pick | None,
        commit: str | None,
        short: str | None,
        token: str | None,
    ) -> tuple[str, bool]:
        """Make sure the commit is in ``mirror``; returns (full commit, whether git fetched).

        Nothing that fails here leaves anything behind: a ref's tip is fetched by
        name (git updates the ref last), a commit by id (protocol v2 servers
        answer "not our ref" only for an object they do not have), and an
        abbreviated id is looked up in a scratch clone that is thrown away.
        """
        if short is not None:
            commit = self._find_abbreviated(remote, short, token)
        assert commit is not None
        if self._has(mirror, commit):
            return commit, False
        if pick is not None:
            self._remote(
                plan.fetch_ref(self.config, mirror, remote, pick.ref_name),
                remote,
                f"fetch {pick.ref_name} from",
                token,
            )
            if self._has(mirror, commit):
                return commit, True
            # The ref moved since it was resolved: fetch the pinned commit itself.
        try:
            self._remote(
                plan.fetch_commit(self.config, mirror, remote, commit),
                remote,
                f"fetch commit {commit} from",
                token,
            )
        except GitRefNotFound:
            raise GitRefNotFound(
                f"{remote} has no commit {commit}",
                hint="check the commit id; an old server may refuse to send a commit by id: "
                "then pass the branch or tag it is on",
            ) from None
        if not self._has(mirror, commit):
            raise GitRefNotFound(
                f"{remote} sent no commit {commit}", hint="check the commit id (40 hex digits)"
            )
        return commit, True

    def _find_abbreviated(self, remote: Remote, short: str, token: str | None) -> str:
        """The full id of ``short``, from the history of every branch and tag (a scratch clone)."""
        scratch = self._new_tmp("scan-")
        try:
            repo = scratch / "scan.git"
            self._local(plan.init_bare(self.config, repo), "create a scratch repository")
            self._remote(
                plan.fetch_all(self.config, repo, remote),
                remote,
                f"fetch every branch and tag (to find commit {short}) of",
                token,
            )
            found = self._peel(repo, short)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if found is None:
            raise GitRefNotFound(
                f"{remote} has no branch, tag or commit {short!r} (or the abbreviation is "
                "ambiguous)",
                hint="pass a branch, a tag, or the full 40-digit commit id",
            )
        return found

    def _checkout(self, mirror: Path, commit: str) -> Path:
        final = self.config.cache_dir / "checkouts" / commit
        if final.is_dir():
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        work = self._new_tmp("checkout-")
        try:
            tree = work / "tree"
            tree.mkdir()
            env = {**self._env(mirror), "GIT_INDEX_FILE": str(work / "index")}
            self._local(plan.checkout(self.config, mirror, tree, commit), "check out", env=env)
            try:
                tree.rename(final)
            except OSError as exc:
                # Another URL with the same commit won the race: the bytes are the same.
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not final.is_dir():
                    raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return final

    # --- git calls -------------------------------------------------------------
    def _ls_remote(self, remote: Remote, spec: RefSpec, token: str | None) -> Pick | None:
        result = self._remote(
            plan.ls_remote(self.config, remote, spec), remote, f"resolve {spec.text!r} of", token
        )
        return plan.pick_ref(remote, spec, plan.parse_ls_remote(result.stdout))

    def _remote(self, argv: list[str], remote: Remote, what: str, token: str | None) -> Result:
        secrets_ = plan.secrets_of(token, self.config)
        result = self._run(argv, self._env(_git_dir(argv), remote, token), secrets_, remote, what)
        if result.returncode != 0:
            raise plan.classify(remote, result.stderr, what, self.config, secrets_)
        return result

    def _local(
        self,
        argv: list[str],
        what: str,
        *,
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> Result:
        result = self._run(argv, env or self._env(_git_dir(argv)), (), None, what)
        if check and result.returncode != 0:
            tail = "; ".join(result.stderr.strip().splitlines()[-3:])
            raise GitSourceError(
                f"git could not {what} in the cache {self.config.cache_dir}: {tail}",
                hint="check the cache volume (space, permissions); a damaged mirror can be "
                "removed from mirrors/ and is fetched again",
            )
        return result

    def _run(
        self,
        argv: list[str],
        env: Mapping[str, str],
        secrets_: tuple[str, ...],
        remote: Remote | None,
        what: str,
    ) -> Result:
        try:
            return self.runner.run(
                argv,
                env=env,
                inherit_env=False,
                check=False,
                timeout=self.config.timeout,
                redact=lambda text: redact(text, secrets_),
            )
        except CommandFailed as exc:  # the timeout
            message = f"{what} {remote if remote else 'the cache'}: git did not finish within "
            message += f"{self.config.timeout:.0f}s"
            if remote is not None:
                raise GitUnreachable(
                    message,
                    hint="the server is slow or does not answer; CODEBASE_MCP_GIT_TIMEOUT sets "
                    "the limit",
                ) from exc
            raise GitSourceError(message, hint="the host may be overloaded") from exc

    def _has(self, mirror: Path, commit: str) -> bool:
        return self._local(plan.has_commit(self.config, mirror, commit), "read", check=False) \
            .returncode == 0  # fmt: skip

    def _peel(self, mirror: Path, name: str) -> str | None:
        result = self._local(plan.peel(self.config, mirror, name), "read", check=False)
        out = result.stdout.strip()
        return out if result.returncode == 0 and _FULL_SHA.fullmatch(out) else None

    def _diff(self, mirror: Path, old: str, new: str) -> list[Change]:
        return plan.parse_diff(self._local(plan.diff(self.config, mirror, old, new), "diff").stdout)

    def _env(
        self, git_dir: Path | None, remote: Remote | None = None, token: str | None = None
    ) -> dict[str, str]:
        return plan.environment(
            self.config, self.environ, git_dir=git_dir, remote=remote, token=token
        )

    def _token(self, remote: Remote) -> str | None:
        """The token, read afresh (a rotated secret is picked up), for http(s) remotes."""
        path = self.config.token_file
        if path is None or remote.scheme not in ("https", "http"):
            return None
        try:
            token = path.read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"cannot read the git token file {path}: {exc.strerror}",
                hint="mount the secret there or unset CODEBASE_MCP_GIT_TOKEN_FILE",
            ) from None
        if not token or "\n" in token:
            raise ConfigError(
                f"the git token file {path} is empty or has more than one line",
                hint="the file must hold the token alone",
            )
        return token

    def _no_such_ref(self, remote: Remote, spec: RefSpec) -> GitRefNotFound:
        return GitRefNotFound(
            f"{remote} has no branch or tag {spec.text!r}",
            hint="check the name (`git ls-remote URL` lists branches and tags), or pass a commit",
        )

    # --- the cache's files -------------------------------------------------------
    def _mirror(self, remote: Remote) -> Path:
        return self.config.cache_dir / "mirrors" / f"{remote.key}.git"

    def _new_tmp(self, prefix: str) -> Path:
        tmp = self.config.cache_dir / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        path = tmp / f"{prefix}{os.getpid()}-{secrets.token_hex(6)}"
        path.mkdir()
        return path

    def _sweep_tmp(self) -> None:
        """Remove what killed processes left in tmp/ (older than a day: no live fetch is)."""
        tmp = self.config.cache_dir / "tmp"
        if not tmp.is_dir():
            return
        cutoff = time.time() - STALE_TMP_SECONDS
        for entry in tmp.iterdir():
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry, ignore_errors=True)

    @contextlib.contextmanager
    def _locked(self, remote: Remote) -> Iterator[None]:
        """An exclusive flock per URL (per open file: threads exclude each other too)."""
        locks = self.config.cache_dir / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        (self.config.cache_dir / "mirrors").mkdir(exist_ok=True)
        wait = self.config.timeout * LOCK_WAIT_CALLS
        deadline = time.monotonic() + wait
        with open(locks / f"{remote.key}.lock", "a+b") as handle:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise GitSourceError(
                            f"another fetch of {remote} held the cache lock for more than "
                            f"{wait:.0f}s",
                            hint="try again later; CODEBASE_MCP_GIT_TIMEOUT sets the limit",
                        ) from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
