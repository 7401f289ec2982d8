"""``python -m pqeval`` and the ``pqeval`` console script.

The CLI is imported inside :func:`main`, so a Ctrl-C while its modules load still ends with
one line and exit code 130 (the app handles it once loaded)."""

import sys


def main() -> None:
    try:
        from .cli import app
    except KeyboardInterrupt:
        print("pqeval: interrupted", file=sys.stderr)
        sys.exit(130)
    app()


if __name__ == "__main__":
    main()
