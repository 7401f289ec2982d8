"""The ``pqeval`` app: error handling shared by every command, the version, help examples.

Errors print one line to stderr, never a traceback. Exit codes: 0 every requested metric
computed; 3 some metric (or pair) is NaN, with reasons shown; 2 could not run (bad input file,
missing model, bad option); 130 interrupted; 1 a bug (``PQEVAL_DEBUG=1`` shows its traceback).
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer
from typer._click.exceptions import ClickException, NoSuchOption
from typer.core import TyperGroup

from .. import render
from ..errors import PqevalError
from ..render import one_line

EXIT_OK, EXIT_PARTIAL, EXIT_ERROR, EXIT_BUG, EXIT_INTERRUPTED = 0, 3, 2, 1, 130


def error(msg: str) -> None:
    """``pqeval: error: MSG`` on stderr, on one line."""
    render.stderr(f"pqeval: error: {one_line(msg)}")


def _usage_message(e: ClickException) -> str:
    """click's usage error (bad option, unreadable path argument...) as one line, with where to look."""
    msg = " ".join(e.format_message().split()).rstrip(".")
    ctx = getattr(e, "ctx", None)
    if isinstance(e, NoSuchOption):
        msg += " (a file name that starts with '-' goes after '--': pqeval score -- -x.wav clean.wav)"
    return f"{msg}; see '{ctx.command_path} --help'" if ctx is not None else msg


class _Group(TyperGroup):
    """Runs a command and turns pqeval's errors into one line on stderr and an exit code, the same
    in a terminal and in-process (typer's CliRunner): pqeval's own errors, click's usage errors
    (``pqeval: error: ...``, exit 2) and Ctrl-C (``pqeval: interrupted``, exit 130)."""

    def main(self, *args: Any, **extra: Any) -> Any:
        if len(args) > 3 or not extra.get("standalone_mode", True):  # a caller that handles errors itself
            return super().main(*args, **extra)
        try:
            code = super().main(*args, **{**extra, "standalone_mode": False})
        except ClickException as e:
            if type(e).__name__ != "NoArgsIsHelpError":  # that one has printed the help already
                error(_usage_message(e))
            sys.exit(e.exit_code)
        except (KeyboardInterrupt, typer.Abort):  # (click turns EOF on a prompt into Abort)
            render.stderr("pqeval: interrupted")
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(code if isinstance(code, int) else EXIT_OK)

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:  # (typer turns Ctrl-C here into a silent exit 130)
            return super().make_context(*args, **kwargs)
        except KeyboardInterrupt:
            render.stderr("pqeval: interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None

    def invoke(self, ctx: Any) -> Any:
        from ..audio import forget_streams

        forget_streams()  # a stream (`-`, a pipe) read by an earlier command in this process is gone
        try:
            return super().invoke(ctx)
        except PqevalError as e:
            error(str(e))
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            render.stderr("pqeval: interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except (typer.Exit, typer.Abort, BrokenPipeError):  # click ends a closed pipe (`| head`) quietly
            raise
        except Exception as e:
            if os.environ.get("PQEVAL_DEBUG") or type(e).__module__.startswith(("click", "typer")):
                raise
            first = one_line(str(e).splitlines()[0]) if str(e) else ""
            render.stderr(
                f"pqeval: internal error: {type(e).__name__}: {first} (rerun with PQEVAL_DEBUG=1 for a traceback)"
            )
            raise typer.Exit(EXIT_BUG) from None


app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Score degraded recordings against their clean references: OpenL3 / VGGish embedding cosine "
    "similarity, PESQ and STOI/ESTOI, on numpy + ONNX Runtime.\n\n"
    "Examples:\n\n"
    "[dim]$[/dim] pqeval score clean.wav degraded.wav\n\n"
    "[dim]$[/dim] pqeval batch clean/ degraded/ --out results.csv\n\n"
    "[dim]$[/dim] pqeval study originals/ --out study/\n\n"
    "[dim]$[/dim] pqeval models\n\n"
    "A file name that starts with '-' goes after '--'; '-' alone is standard input:\n\n"
    "[dim]$[/dim] pqeval score -- -weird.wav clean.wav\n\n"
    "[dim]$[/dim] sox in.flac -t wav - | pqeval score clean.wav -",
)
export_app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    help="Build ONNX models from the original frameworks (vggish, openl3: the `export` extra), and "
    "waveform-to-embedding graphs from installed models (graph: needs only onnx).",
)
app.add_typer(export_app, name="export")


def examples(*lines: str) -> str:
    """Help text examples, one command per line."""
    return "Examples:\n\n" + "\n\n".join(f"[dim]$[/dim] {ln}" for ln in lines)


def _show_version(value: bool) -> None:
    if value:
        from .. import __version__

        print(f"pqeval {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """pqeval's commands."""
