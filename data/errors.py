"""Errors raised by readers: each names the file, the place in it and the problem."""

from __future__ import annotations

from pathlib import Path


class IngestError(Exception):
    """A file that could not be read: ``path``, ``place`` (line / record / table), ``problem``."""

    def __init__(self, path: str | Path, place: str, problem: str) -> None:
        self.path = str(path)
        self.place = place
        self.problem = problem
        super().__init__(f"{self.path}: {place}: {problem}")
