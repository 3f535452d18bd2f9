"""`python -m recorder` runs the command line."""

from recorder.cli import main

main()
