"""Per-base tracks as bedGraph, which genome browsers read: 0-based half-open intervals, one line per run of
equal (rounded) value, bases without a value (NaN) left out; one `track` section per column. Written by
annotate.py --track, read back by the demo for its picture."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from os import PathLike

import numpy as np

from core.errors import InputError

from .files import numbered_lines, write_atomically


def bedgraph_lines(
    tracks: Mapping[str, np.ndarray], names: Sequence[str], decimals: int = 2
) -> Iterator[str]:
    """bedGraph text of per-base values: `tracks[seqid]` is [length, len(names)]."""
    for column, name in enumerate(names):
        yield f'track type=bedGraph name="{name}"\n'
        for seqid, values in tracks.items():
            rounded = np.round(values[:, column], decimals)
            changes = np.flatnonzero(rounded[1:] != rounded[:-1]) + 1  # NaN != NaN: a run of its own each
            for start, end in zip(np.r_[0, changes], np.r_[changes, len(rounded)], strict=True):
                if not np.isnan(rounded[start]):
                    yield f"{seqid}\t{start}\t{end}\t{rounded[start]:.{decimals}f}\n"


def write_bedgraph(
    path: str | PathLike, tracks: Mapping[str, np.ndarray], names: Sequence[str], decimals: int = 2
) -> None:
    """Write `bedgraph_lines` atomically (gzip if the name ends in .gz)."""
    write_atomically(path, bedgraph_lines(tracks, names, decimals))


def read_bedgraph(path: str | PathLike, lengths: Mapping[str, int]) -> dict[str, np.ndarray]:
    """The per-base values of a bedGraph file: seqid -> [length, sections] (NaN where a section has no
    value), its `track` sections as columns in file order; seqids of `lengths` only. A line that is not
    `seqid start end value` inside a section, or runs past its sequence, is an InputError naming it."""
    columns: list[dict[str, list[tuple[int, int, float]]]] = []
    for number, line in numbered_lines(path):
        fields = line.split()
        if not fields or fields[0] in ("browser", "#"):
            continue
        if fields[0] == "track":
            columns.append({})
            continue
        try:
            seqid, start, end, value = fields[0], int(fields[1]), int(fields[2]), float(fields[3])
        except (IndexError, ValueError):
            raise InputError(path, number, "expected: seqid start end value") from None
        if not columns or not 0 <= start < end <= lengths.get(seqid, end):
            raise InputError(path, number, "a value outside a track section or its sequence")
        columns[-1].setdefault(seqid, []).append((start, end, value))
    tracks = {seqid: np.full((length, len(columns)), np.nan) for seqid, length in lengths.items()}
    for column, runs in enumerate(columns):
        for seqid, spans in runs.items():
            for start, end, value in spans if seqid in tracks else ():
                tracks[seqid][start:end, column] = value
    return tracks
