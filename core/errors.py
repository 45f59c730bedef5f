"""The one exception every part of GFF-MoE raises for bad input files."""

from __future__ import annotations

import re
from os import PathLike


class InputError(Exception):
    """A problem with an input file, reported as one line: ``PATH:LINE: message``.

    `line` is 1-based; None when the problem is the file as a whole (missing, unreadable).
    CLIs catch it, print `str(err)` and exit with status 2.
    """

    def __init__(self, path: str | PathLike, line: int | None, message: str):
        self.path, self.line, self.message = str(path), line, message
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {message}")


def first_line(err: BaseException) -> str:
    """The first line of a library's error text, for an InputError: without terminal colour codes (torch's
    unpickler writes them), or the error's type when it has no text."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()
    return (text.splitlines() or [type(err).__name__])[0]
