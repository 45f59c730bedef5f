"""Genome-track picture: reference genes and each predictor's genes along one sequence, as a PNG.

The first track is the reference; genes of the other tracks are coloured by how they match it
(the conventions of `scoring`): exact (same strand and CDS chain: start, stop and every exon boundary),
3' only (same strand and stop), or not in the reference. Forward-strand genes lie above the track's
midline, reverse-strand genes below it; a single-exon gene is an arrow from its 5' to its 3' end, a
spliced one its exons as boxes (CDS full height, UTR half) joined by a line for each intron. Given a
model's per-base coding probability (annotate.py --track), a last lane draws it per strand the same way:
+ above the midline, - below. Long sequences are drawn as several stacked panels.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only: no display needed

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrow, Patch, Rectangle  # noqa: E402

from core.features import Gene  # noqa: E402

COLOURS = {"reference": "#4c72b0", "exact": "#55a868", "3' only": "#dd8452", "not in reference": "#c44e52"}
TRACK_HEIGHT = 0.8  # of one track row; each strand gets half of it
CODING_LANE = "coding probability"
CODING_COLOUR = "#8172b3"
CODING_BINS = 1000  # per panel: the lane shows each bin's mean


def _chains(gene: Gene) -> set[tuple]:
    """(strand, CDS segments) of each coding transcript; (strand, the gene's span) when none codes."""
    chains = {(gene.strand, t.cds_segments()) for t in gene.transcripts if t.cds is not None}
    return chains or {(gene.strand, ((gene.start, gene.end),))}


def _stops(gene: Gene) -> set[tuple[str, int]]:
    return {(strand, chain[-1][1] if strand != "-" else chain[0][0]) for strand, chain in _chains(gene)}


def _reference_keys(reference: Sequence[Gene]) -> tuple[set, set]:
    """The reference's CDS chains and stops, gathered once for all the genes matched against it."""
    return {c for g in reference for c in _chains(g)}, {s for g in reference for s in _stops(g)}


def match_kind(gene: Gene, reference: Sequence[Gene]) -> str:
    """How a predicted gene matches the reference: 'exact', "3' only" or 'not in reference'."""
    return _match(gene, _reference_keys(reference))


def _match(gene: Gene, keys: tuple[set, set]) -> str:
    chains, stops = keys
    if _chains(gene) & chains:
        return "exact"
    if _stops(gene) & stops:
        return "3' only"
    return "not in reference"


def plot_gene_tracks(
    tracks: Mapping[str, Sequence[Gene]],
    length: int,
    path: str | PathLike,
    title: str = "",
    offset: int = 0,
    panel_bp: int = 50_000,  # about; panels are equal and cover the sequence exactly
    coding: np.ndarray | None = None,
) -> Path:
    """Draw `tracks` (name -> 1-based genes; the first is the reference) over 1..length into a PNG.

    `offset` is added to the axis labels (the sequence's position on a longer one). `coding` ([length, 2],
    + and - strand, NaN where unknown) adds the coding-probability lane under the genes.
    """
    names = list(tracks) + ([CODING_LANE] if coding is not None else [])
    keys = _reference_keys(tracks[names[0]])
    panels = max(1, round(length / panel_bp))
    panel_bp = math.ceil(length / panels)  # equal panels that end with the sequence
    figure, axes = plt.subplots(
        panels,
        1,
        figsize=(14, 0.5 + panels * (0.55 * len(names) + 0.5)),
        squeeze=False,
        constrained_layout=True,
    )
    for panel, axis in enumerate(axes[:, 0]):
        lo, hi = panel * panel_bp + 1, min(length, (panel + 1) * panel_bp)
        for row, name in enumerate(names):
            y = len(names) - 1 - row
            axis.axhline(y, color="#bbbbbb", linewidth=0.5)
            if name == CODING_LANE:
                _draw_coding(axis, coding[lo - 1 : hi], lo + offset, y)
                continue
            for gene in tracks[name]:
                if gene.end < lo or gene.start > hi:
                    continue
                colour = COLOURS["reference"] if row == 0 else COLOURS[_match(gene, keys)]
                _draw_gene(axis, gene, y, colour, offset)
        axis.set_xlim(lo - 1 + offset, (panel + 1) * panel_bp + offset)
        axis.set_ylim(-0.6, len(names) - 0.4)
        axis.set_yticks(range(len(names)), list(reversed(names)))
        axis.ticklabel_format(axis="x", style="plain", useOffset=False)
        axis.tick_params(axis="x", labelsize=8)
        for side in ("top", "right", "left"):
            axis.spines[side].set_visible(False)
    axes[-1, 0].set_xlabel("position (bp)")
    figure.legend(
        handles=[Patch(color=c, label=k) for k, c in COLOURS.items()],
        loc="outside upper right",
        ncols=4,
        fontsize=8,
    )
    if title:
        figure.suptitle(title, fontsize=10, x=0.01, ha="left")
    path = Path(path)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _draw_gene(axis, gene: Gene, y: float, colour: str, offset: int) -> None:
    """Above the midline for '+', below for '-': an arrow from the gene's 5' to its 3' end, or for a spliced
    gene (its first coding transcript) exon boxes joined by an intron line."""
    forward = gene.strand != "-"
    start, end = gene.start + offset, gene.end + offset
    width = TRACK_HEIGHT / 2 * 0.8
    middle = y + (width / 2 if forward else -width / 2)
    transcript = next((t for t in gene.transcripts if t.cds is not None), None)
    if transcript is not None and len(transcript.exons) > 1:
        axis.plot([start, end], [middle, middle], color=colour, linewidth=0.8)
        for segments, height in ((transcript.exons, width / 2), (transcript.cds_segments(), width)):
            for lo, hi in segments:
                corner = (lo + offset, middle - height / 2)
                axis.add_patch(Rectangle(corner, hi - lo + 1, height, color=colour, linewidth=0))
        return
    x, dx = (start, end - start) if forward else (end, start - end)
    head = min(abs(dx), 600)
    axis.add_patch(
        FancyArrow(
            x,
            middle,
            dx,
            0,
            width=width,
            head_width=width,
            head_length=head,
            length_includes_head=True,
            color=colour,
            linewidth=0,
        )
    )


def _draw_coding(axis, coding: np.ndarray, first: int, y: float) -> None:
    """Per-strand coding probability of the bases from position `first` on, as bin means: + filled up from
    the midline, - down."""
    bins = np.array_split(np.arange(len(coding)), min(CODING_BINS, len(coding)))
    x = [first + part[0] for part in bins]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the mean of a bin that no window read is NaN
        means = np.array([np.nanmean(coding[part], axis=0) for part in bins])
    height = TRACK_HEIGHT / 2
    axis.fill_between(x, y, y + height * means[:, 0], step="post", color=CODING_COLOUR, linewidth=0)
    axis.fill_between(x, y, y - height * means[:, 1], step="post", color=CODING_COLOUR, linewidth=0)
