"""``python -m engine.train``: the ``train`` command, kept at its old path; the command lives
in :mod:`engine.commands.train`."""

from __future__ import annotations

from data.entry import run_main
from engine.commands.train import main, parse_budget

__all__ = ["main", "parse_budget"]

if __name__ == "__main__":
    run_main(main)
