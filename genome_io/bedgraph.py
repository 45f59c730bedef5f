"""Per-base tracks as bedGraph, which genome browsers read: 0-based half-open intervals, one line per run of
equal (rounded) value, bases without a value (NaN) left out; one `track` section per column."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from os import PathLike

import numpy as np

from .files import write_atomically


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
