"""The `kovra` command: `main` parses the arguments and runs the command group they name."""

from gateway.cli.main import main

__all__ = ["main"]
