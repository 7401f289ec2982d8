"""``pqeval merge``: shard outputs (``pqeval batch --shard I/N``) into one results table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import render
from ..errors import UsageError
from ..registry import ALL_METRICS
from .app import EXIT_OK, EXIT_PARTIAL, app, examples
from .options import Quiet, exit_for


@app.command(
    help="Join the outputs of `pqeval batch --shard I/N` into one results table. Refuses a pair found in "
    "two parts and parts scored with different settings or models; with the pair list the shards were "
    "given, orders the rows as the list and names the pairs no part has. Exit 3 when a pair is missing or "
    "a row has no value (as `pqeval batch`).\n\n"
    + examples(
        "pqeval merge results.csv part-*.csv",
        "pqeval merge results.csv part-*.csv --pairs pairs.csv",
        "pqeval merge results.csv part-*.csv --pairs clean/ --pairs degraded/",
    )
)
def merge(
    out: Annotated[Path, typer.Argument(help="The merged results CSV (an existing results table is replaced).")],
    parts: Annotated[list[Path], typer.Argument(help="The shard outputs.")],
    pairs: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--pairs",
            metavar="PATH",
            help="The pair list the shards were given: PAIRS.csv (once), or CLEAN_DIR and DEGRADED_DIR "
            "(--pairs twice), to order the rows and list the missing pairs.",
        ),
    ] = None,
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="With CLEAN_DIR and DEGRADED_DIR: as `pqeval batch --recursive`.")
    ] = False,
    quiet: Quiet = False,
) -> None:
    from ..merge import merge_results
    from ..pairs import pairs_from_csv, pairs_from_dirs

    listed = None
    if pairs:
        if len(pairs) == 1:
            if recursive:
                raise UsageError("--recursive is for --pairs CLEAN_DIR --pairs DEGRADED_DIR, not a pairs CSV")
            listed = pairs_from_csv(pairs[0])
        elif len(pairs) == 2:
            listed = pairs_from_dirs(pairs[0], pairs[1], recursive=recursive)
        else:
            raise UsageError("--pairs takes PAIRS.csv, or CLEAN_DIR and DEGRADED_DIR (twice)")
    res = merge_results(out, list(parts), listed)
    for note in res.notes:
        render.stderr(f"pqeval: note: {note}")
    for clean, degraded in res.missing:
        render.stderr(f"pqeval: missing: {clean} -> {degraded}")
    summary = f"pqeval: {len(res.rows)} rows from {len(parts)} parts -> {out}"
    if listed is not None:
        summary += f"; {len(res.missing)} of {len(dict.fromkeys(p.key for p in listed))} listed pairs missing"
    render.stderr(summary, quiet)
    metrics = tuple(m for m in ALL_METRICS if m in res.columns)
    raise typer.Exit(EXIT_PARTIAL if res.missing else EXIT_OK if not res.rows else exit_for(res.rows, metrics))
