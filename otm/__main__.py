"""`python -m otm` (same as the `otm` console script)."""

from otm.cli import main

if __name__ == "__main__":
    main()
