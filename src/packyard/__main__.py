"""``python -m packyard`` runs the CLI."""

from packyard.cli.main import main

main()
