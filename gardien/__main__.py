"""`python -m gardien` runs the CLI."""

from gardien.cli import main

main()
