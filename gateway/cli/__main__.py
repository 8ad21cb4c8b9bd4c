"""`python -m gateway.cli`: the same as the `kovra` command."""

from gateway.cli import main

main()
