"""The ``pqeval`` app: error handling shared by every command, the version, help examples.

Errors print one line to stderr, never a traceback. Exit codes: 0 every requested metric
computed; 3 some metric (or pair) is NaN, with reasons shown; 2 could not run (bad input file,
missing model, bad option); 130 interrupted; 1 a bug (``PQEVAL_DEBUG=1`` shows its traceback).
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from .. import render
from ..errors import PqevalError

EXIT_OK, EXIT_PARTIAL, EXIT_ERROR, EXIT_BUG, EXIT_INTERRUPTED = 0, 3, 2, 1, 130


class _Group(TyperGroup):
    """Runs a command and turns pqeval's errors into one line on stderr and an exit code, the same
    in a terminal and in-process (typer's CliRunner)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except PqevalError as e:
            render.stderr(f"pqeval: error: {e}")
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            render.stderr("pqeval: interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as e:
            if os.environ.get("PQEVAL_DEBUG") or type(e).__module__.startswith(("click", "typer")):
                raise
            first = str(e).splitlines()[0] if str(e) else ""
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
    "[dim]$[/dim] pqeval models",
)
export_app = typer.Typer(
    cls=_Group, no_args_is_help=True, help="Build ONNX models from the original frameworks (needs the `export` extra)."
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
