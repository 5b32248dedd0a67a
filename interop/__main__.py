"""`python -m interop` is the `interop` command."""

from interop.cli import app

app(prog_name="interop")
