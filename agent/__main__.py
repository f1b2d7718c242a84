"""`python -m agent` is the `pbx-agent` command."""

from agent.cli import main

main()
