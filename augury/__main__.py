"""Allow `python -m augury ...` as an alias of the `augury` console script."""

from augury.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
