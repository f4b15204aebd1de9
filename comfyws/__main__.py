"""`python -m comfyws` = the `comfyws` command."""

from comfyws.cli import main

main()
