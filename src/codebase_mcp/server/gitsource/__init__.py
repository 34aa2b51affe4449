"""Git sources: index a repository by URL and ref, pinned to one commit.

The indexing service calls, in a worker thread (every call is blocking)::

    sources = GitSources(settings.git_config())
    sources.check(repo_url, ref)                 # at tool time: bad input refused, no I/O
    resolved = sources.resolve(repo_url, ref)    # once, when the job is queued: ref -> commit
    checkout = sources.fetch(resolved.url, resolved.ref_name or resolved.ref,
                             commit=resolved.commit, since=project_last_commit)
    # index checkout.path; record checkout.commit and checkout.url (credential-free);
    # checkout.changes lists the paths changed since `since` (None: unknown, diff by hash)

See :mod:`.urls` (validation), :mod:`.plan` (git commands as data) and
:mod:`.cache` (the cache and the calls); docs/server.md, "Git sources".
"""

from codebase_mcp.server.gitsource.cache import Checkout, GitSources, Resolved
from codebase_mcp.server.gitsource.plan import Change, GitConfig
from codebase_mcp.server.gitsource.urls import HostRule, Remote, parse_ref, parse_remote, redact

__all__ = [
    "Change",
    "Checkout",
    "GitConfig",
    "GitSources",
    "HostRule",
    "Remote",
    "Resolved",
    "parse_ref",
    "parse_remote",
    "redact",
]
