"""Errors about input files, in a module light enough for the workflow to import at parse time."""
from __future__ import annotations

import os


class EventFileError(ValueError):
    """A bad event file; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
