"""``python -m engine.simulate``: the ``simulate`` command, kept at its old path; the command
lives in :mod:`engine.commands.simulate`."""

from __future__ import annotations

from data.entry import run_main
from engine.commands.simulate import main, summary

__all__ = ["main", "summary"]

if __name__ == "__main__":
    run_main(main)
