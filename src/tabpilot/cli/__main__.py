"""`python -m tabpilot.cli`: the same command line as the `tabpilot` script."""

from tabpilot.cli import main

main()
