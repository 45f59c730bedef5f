"""Numbered text lines of plain or gzip files, with every read failure turned into an InputError; text
written atomically."""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterable, Iterator
from os import PathLike
from pathlib import Path

from core.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"


def write_atomically(path: str | PathLike, lines: Iterable[str]) -> None:
    """Write text lines to `path` (gzip if it ends in .gz) through a temporary file in the same folder that
    replaces the target only once complete, so a failure or an interrupt leaves no partial output. An
    unwritable path raises InputError naming it."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(temporary, "wt", encoding="utf-8") as fh:
            fh.writelines(lines)
        os.replace(temporary, path)
    except OSError as err:
        raise InputError(path, None, f"cannot write: {err.strerror or err}") from None
    finally:
        temporary.unlink(missing_ok=True)


def is_gzip(path: str | PathLike) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def numbered_lines(path: str | PathLike) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its line ending) for every line; gzip is detected by content.

    CRLF and CR line endings are accepted (universal newlines), and so is a UTF-8 byte-order mark. A
    missing file, a directory, a truncated or corrupt gzip stream and bytes that are not text raise
    InputError naming the file and the line reached.
    """
    path = Path(path)
    if os.path.isdir(path):  # os.path, not Path: False (not OSError) for a name too long to be a file
        raise InputError(path, None, "is a directory, not a file")
    if not os.path.isfile(path):
        raise InputError(path, None, "no such file")
    opener = gzip.open if is_gzip(path) else open
    number = 0
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline=None) as fh:
            for number, line in enumerate(fh, start=1):  # noqa: B007 (number is read after the loop)
                yield number, line.rstrip("\n")
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise InputError(path, number + 1, f"truncated or corrupt gzip stream ({err})") from None
    except UnicodeDecodeError:
        raise InputError(path, number + 1, "not a text file (bytes that are not UTF-8)") from None
    except OSError as err:
        raise InputError(path, None, f"cannot read: {err.strerror or err}") from None
