"""`python -m comfyws.simnode ...`: the same command as `comfyws simnode ...`."""

from __future__ import annotations

import typer

from comfyws.commands.simnode import simnode


def main() -> None:
    typer.run(simnode)


if __name__ == "__main__":
    main()
