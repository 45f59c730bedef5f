"""Genome-track picture: reference genes and each predictor's genes along one sequence, as a PNG.

The first track is the reference; genes of the other tracks are coloured by how they match it
(the prokaryote conventions of `scoring`): exact (same strand, start and stop), 3' only (same strand
and stop), or not in the reference. Forward-strand genes point right above the track's midline,
reverse-strand genes point left below it. Long sequences are drawn as several stacked panels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrow, Patch  # noqa: E402

from core.features import Gene  # noqa: E402

COLOURS = {"reference": "#4c72b0", "exact": "#55a868", "3' only": "#dd8452", "not in reference": "#c44e52"}
TRACK_HEIGHT = 0.8  # of one track row; each strand gets half of it


def _stop(gene: Gene) -> int:
    return gene.end if gene.strand != "-" else gene.start


def match_kind(gene: Gene, reference: Sequence[Gene]) -> str:
    """How a predicted gene matches the reference: 'exact', "3' only" or 'not in reference'."""
    spans = {(g.strand, g.start, g.end) for g in reference}
    stops = {(g.strand, _stop(g)) for g in reference}
    if (gene.strand, gene.start, gene.end) in spans:
        return "exact"
    if (gene.strand, _stop(gene)) in stops:
        return "3' only"
    return "not in reference"


def plot_gene_tracks(
    tracks: Mapping[str, Sequence[Gene]],
    length: int,
    path: str | PathLike,
    title: str = "",
    offset: int = 0,
    panel_bp: int = 50_000,  # about; panels are equal and cover the sequence exactly
) -> Path:
    """Draw `tracks` (name -> 1-based genes; the first is the reference) over 1..length into a PNG.

    `offset` is added to the axis labels (the sequence's position on a longer one).
    """
    names = list(tracks)
    reference = tracks[names[0]]
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
            for gene in tracks[name]:
                if gene.end < lo or gene.start > hi:
                    continue
                colour = COLOURS["reference"] if row == 0 else COLOURS[match_kind(gene, reference)]
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
    """An arrow from the gene's 5' to its 3' end, above the midline for '+', below for '-'."""
    forward = gene.strand != "-"
    start, end = gene.start + offset, gene.end + offset
    width = TRACK_HEIGHT / 2 * 0.8
    x, dx = (start, end - start) if forward else (end, start - end)
    head = min(abs(dx), 600)
    axis.add_patch(
        FancyArrow(
            x,
            y + (width / 2 if forward else -width / 2),
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
