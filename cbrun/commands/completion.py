"""`cbrun completion [bash|zsh|fish]`: the script that makes the shell complete cbrun.

The script is click's own (the same as `_CBRUN_COMPLETE=bash_source cbrun` prints); at each
Tab it calls cbrun, which answers from cbrun/commands/complete.py without importing TensorFlow.
"""

from __future__ import annotations

import os

import click

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_CBRUN_COMPLETE"


def _login_shell() -> str:
    name = os.path.basename(os.environ.get("SHELL", ""))
    return name if name in SHELLS else "bash"


@click.command("completion")
@click.argument("shell", required=False, type=click.Choice(SHELLS))
def completion(shell: str | None) -> None:
    """Print the completion script for SHELL (default: the login shell, else bash).
    Enable it in the shell's start file:

    \b
      eval "$(cbrun completion bash)"     # ~/.bashrc
      eval "$(cbrun completion zsh)"      # ~/.zshrc
      cbrun completion fish | source      # ~/.config/fish/config.fish

    Tab then completes commands, options, run directories (resume, plot, export, ...) and
    callback names (cbrun callbacks).
    """
    from click.shell_completion import get_completion_class

    from cbrun.cli import cli

    chosen = shell or _login_shell()
    script = get_completion_class(chosen)(cli, {}, "cbrun", COMPLETE_VAR).source()
    click.echo(script, nl=False)
