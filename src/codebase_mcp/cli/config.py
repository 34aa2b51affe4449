"""``codebase-mcp config [--env | --json]``: every setting, where it comes from, what it is now."""

from __future__ import annotations

import json
import os
import textwrap

import click


@click.command()
@click.option("--env", "as_env", is_flag=True,
              help="Print a commented .env template of every setting at its default "
              "(docs/env.example is this output).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def config(as_env: bool, as_json: bool) -> None:
    """Every setting: its environment variable, default, current value and what it does.

    Secrets (DATABASE_PASSWORD, the password in DATABASE_URL) are shown as ***.
    Settings are grouped by the process that reads them: the CLI on the host, the
    server, init and the embedder (`codebase-mcp up` sets the pod's own environment).
    """
    from codebase_mcp import configref

    if as_env:
        click.echo(configref.env_template(), nl=False)
        return
    groups = configref.groups()
    if as_json:
        data = [
            {
                "group": group.key,
                "env": s.env,
                "default": s.default,
                "value": configref.current(s, os.environ),
                "secret": s.secret,
                "help": s.help,
            }
            for group in groups
            for s in group.settings
        ]
        click.echo(json.dumps({"settings": data}, indent=2))
        return
    for index, group in enumerate(groups):
        if index:
            click.echo()
        click.secho(f"{group.key}: {group.title}", bold=True)
        for s in group.settings:
            value = configref.current(s, os.environ)
            default = s.default or "unset"
            state = f"= {value}  (set; default {default})" if value is not None else (
                f"= {default}  (default)"
            )  # fmt: skip
            click.echo(f"  {s.env} {state}")
            click.echo(textwrap.fill(s.help, 96, initial_indent="      ",
                                     subsequent_indent="      "))  # fmt: skip
