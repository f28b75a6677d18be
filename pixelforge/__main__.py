"""`python -m pixelforge` runs the command line."""

from pixelforge.cli import main

main()
