"""Cutting a sequence into training windows without cutting genes.

Cut points are *boundaries*: boundary b lies between bases b-1 and b (1-based). A boundary is clean when
no gene spans it. Windows end on the last clean boundary that keeps them within the limit and start on
the first clean boundary inside the overlap with their left neighbour; only a gene cluster longer than
the search range forces a cut through genes (those genes are clipped, with open edges).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass

from core.features import Gene, merge_spans


@dataclass(frozen=True)
class Window:
    start: int  # 1-based inclusive
    end: int
    long_gene: bool = False  # a window of its own for one gene longer than the limit

    def __len__(self) -> int:
        return self.end - self.start + 1


class GeneClusters:
    """Merged spans of the genes a cut should avoid, queried for clean boundaries."""

    def __init__(self, genes: list[Gene]):
        self.spans = merge_spans([(g.start, g.end) for g in genes])
        self.starts = [s for s, _ in self.spans]

    def _inside(self, b: int) -> tuple[int, int] | None:
        """The cluster a cut at boundary b would go through (start < b <= end), if any."""
        i = bisect_right(self.starts, b - 1) - 1
        if i >= 0 and self.spans[i][0] < b <= self.spans[i][1]:
            return self.spans[i]
        return None

    def last_clean(self, lo: int, hi: int) -> int | None:
        """The largest clean boundary in [lo, hi]."""
        span = self._inside(hi)
        b = hi if span is None else span[0]
        return b if b >= lo else None

    def first_clean(self, lo: int, hi: int) -> int | None:
        """The smallest clean boundary in [lo, hi]."""
        span = self._inside(lo)
        b = lo if span is None else span[1] + 1
        return b if b <= hi else None


def plan_windows(length: int, genes: list[Gene], limit: int, threshold: int, overlap: int) -> list[Window]:
    """Windows over a sequence of `length` bases annotated with `genes` (1-based).

    Regular windows tile the whole sequence (each <= limit, neighbours sharing up to `overlap` bases).
    Every gene longer than `limit` but not than `threshold` also gets a window of its own, with up to
    `overlap // 2` flanking bases each side.
    """
    if length <= limit:
        tiles = [Window(1, length)]
    else:
        clusters = GeneClusters([g for g in genes if g.end - g.start + 1 <= limit])
        tiles, start = [], 1
        while True:
            if start + limit > length:
                tiles.append(Window(start, length))
                break
            cut = clusters.last_clean(start + limit // 2, start + limit) or start + limit
            tiles.append(Window(start, cut - 1))
            start = clusters.first_clean(cut - overlap, cut) or cut - overlap
    flank = overlap // 2
    own = [
        Window(max(1, g.start - flank), min(length, g.end + flank), long_gene=True)
        for g in genes
        if limit < g.end - g.start + 1 <= threshold
    ]
    return tiles + sorted(set(own), key=lambda w: (w.start, w.end))


class GeneIndex:
    """Genes of one sequence (1-based, any order) looked up by overlap with a window."""

    def __init__(self, genes: list[Gene]):
        self.genes = sorted(genes, key=lambda g: (g.start, g.end))
        self.starts = [g.start for g in self.genes]
        self.longest = max((g.end - g.start + 1 for g in self.genes), default=0)

    def overlapping(self, start: int, end: int) -> list[Gene]:
        lo = bisect_left(self.starts, start - self.longest)
        hi = bisect_right(self.starts, end)
        return [g for g in self.genes[lo:hi] if g.end >= start]


def window_genes(index: GeneIndex, window: Window) -> list[Gene]:
    """The genes of a window in window coordinates (0-based), cut edges marked open by `Gene.clip`."""
    clipped = (g.clip(window.start, window.end) for g in index.overlapping(window.start, window.end))
    return [g.shift(-window.start) for g in clipped if g is not None]
