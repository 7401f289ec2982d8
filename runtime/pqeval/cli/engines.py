"""``pqeval engines``: which engine × precision this machine runs, and why not where it cannot."""

from __future__ import annotations

from .. import render
from .app import app, examples
from .options import Json


@app.command(
    "engines",
    help="List the inference engines and precisions (--engine, --precision) and whether this machine "
    "runs each natively, naming the missing instruction set or package where not.\n\n"
    + examples("pqeval engines", "pqeval engines --json"),
)
def engines_cmd(as_json: Json = False) -> None:
    from ..inference import engine_table

    table = engine_table()
    if as_json:
        print(render.json_text(table))
    else:
        render.engines_table(table)
