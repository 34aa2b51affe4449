"""The server container's init: wait for dependencies, migrate, then supervise the server.

``codebase-mcp init [OPTIONS] -- CMD...`` (see ``codebase_mcp.cli.init``) runs
:func:`codebase_mcp.init.run.run_init`. The pieces are small modules:
``backoff`` (pure schedules and deadlines), ``waits`` (one probe per
dependency), ``supervisor`` (PID 1 duties), ``logging`` (one line per event).
"""
