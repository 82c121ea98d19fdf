"""`python -m branch_client` runs the branchsync CLI (also the PyInstaller entry point)."""

from branch_client.cli import main

main()
