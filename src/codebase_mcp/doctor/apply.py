"""Run a :class:`~codebase_mcp.doctor.fix.Plan`: commands through ``codebase_mcp.proc``, files
merged and replaced atomically. Returns what changed, one line each (nothing: nothing did).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from codebase_mcp import ui
from codebase_mcp.doctor import conf
from codebase_mcp.doctor.fix import Command, Plan, SetConf, WriteFile
from codebase_mcp.proc import Runner

APT_HINT = (
    "apt-get failed: see its message above; check the apt sources (the Debian mirror) "
    "and that no other apt or dpkg is running"
)


def apply(plan: Plan, runner: Runner) -> list[str]:
    changed: list[str] = []
    for action in plan.actions:
        if isinstance(action, Command):
            with ui.step(f"{action.why}: {action.shell()}"):
                hint = APT_HINT if action.argv[0] == "apt-get" else None
                runner.run(action.argv, env=dict(action.env), hint=hint)
            changed.append(f"ran {action.shell()}")
        elif isinstance(action, SetConf):
            path = Path(action.path)
            current = path.read_text() if path.is_file() else ""
            settings = {(table, key): value for table, key, value in action.settings}
            if write_if_changed(path, conf.merge(current, settings, str(path)), current):
                changed.append(f"set {action.describe()}")
        elif isinstance(action, WriteFile):
            path = Path(action.path)
            existing = path.read_text() if path.is_file() else None
            if write_if_changed(path, action.text, existing):
                changed.append(f"wrote {path}")
    return changed


def write_if_changed(path: Path, text: str, current: str | None) -> bool:
    """Replace ``path`` atomically (keeping its mode) unless it already holds ``text``."""
    if text == current:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True
