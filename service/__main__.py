"""`python -m service` is the `fapiao-agent` command."""

from service.cli import main

main(prog_name="fapiao-agent")
