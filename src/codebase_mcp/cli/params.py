"""Command-line spellings shared by several commands."""

from __future__ import annotations

import click

# Go's strconv.ParseBool: what podman, buildah and skopeo accept in --flag=VALUE.
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


class PodmanBoolCommand(click.Command):
    """A command whose ``--x/--no-x`` flags also take podman's ``--x=true|false``.

    podman, buildah and skopeo spell boolean options ``--tls-verify=false``, so that is
    how users type them; click's flags take no value. Before click parses, each
    ``--x=VALUE`` of such a flag becomes ``--x`` or ``--no-x``; ``--no-x`` keeps working.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, expand_bool_values(self, args))


def expand_bool_values(command: click.Command, args: list[str]) -> list[str]:
    flags: dict[str, tuple[str, str]] = {}
    for param in command.params:
        if isinstance(param, click.Option) and param.is_flag and param.secondary_opts:
            for name in param.opts:
                flags[name] = (name, param.secondary_opts[0])
    out: list[str] = []
    for index, arg in enumerate(args):
        if arg == "--":
            out += args[index:]
            break
        name, equals, value = arg.partition("=")
        if equals and name in flags:
            on, off = flags[name]
            if value in _TRUE:
                out.append(on)
            elif value in _FALSE:
                out.append(off)
            else:
                raise click.BadParameter(
                    f"{value!r} is not a boolean: use {name}=true or {name}=false (or {off})",
                    param_hint=f"'{name}'",
                )
        else:
            out.append(arg)
    return out


# Shared by `image publish` and `index push|pull`: one spelling of registry TLS.
tls_verify_option = click.option(
    "--tls-verify/--no-tls-verify",
    default=True,
    show_default=True,
    help="Require HTTPS with a valid certificate (turn off only for a local registry). "
    "Also spelled as podman does: --tls-verify=true|false.",
)
