"""The per-base gene-structure track: every base of a window labelled on each strand.

The decoder's target names a gene with a handful of tokens; the track gives the encoder a label at every
base, derived from the very genes the codec writes (window coordinates, open edges as `Gene.clip` marks
them), so the two targets never disagree. Per base and strand there are two labels:

- `REGION`: intergenic, CDS with its codon position (0, 1, 2 in the direction of transcription), intron,
  or UTR / non-coding exon;
- `BOUNDARY`: none, or the signal that decides a gene: start codon, stop codon (three bases each), splice
  donor / acceptor (the intron's first / last two bases, in the direction of transcription), transcript
  start / end (one base). A boundary at an open (cut) edge is not a boundary and is not marked.

`gene_track(genes, length)` returns an int8 array [length, 4]: columns `TRACK_COLUMNS` (region and boundary
of the + strand, then of the - strand). Where features of one strand overlap, CDS beats UTR beats intron
beats intergenic, and the first gene (canonical order) keeps its codon positions.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from core.features import Gene

REGION = ("intergenic", "cds0", "cds1", "cds2", "intron", "utr")
BOUNDARY = ("none", "start_codon", "stop_codon", "donor", "acceptor", "transcript_start", "transcript_end")
TRACK_COLUMNS = ("region_plus", "boundary_plus", "region_minus", "boundary_minus")
INTERGENIC, CDS0, INTRON, UTR = 0, 1, 4, 5
CDS_CLASSES = (1, 2, 3)  # codon position 0, 1, 2
_PRIORITY = np.array([0, 3, 3, 3, 1, 2])  # intergenic < intron < utr < cds
NONE, START_CODON, STOP_CODON, DONOR, ACCEPTOR, TRANSCRIPT_START, TRANSCRIPT_END = range(len(BOUNDARY))


def gene_track(genes: Iterable[Gene], length: int) -> np.ndarray:
    """Region and boundary class of each of `length` bases on both strands (see the module docstring)."""
    track = np.zeros((length, len(TRACK_COLUMNS)), dtype=np.int8)
    for gene in genes:
        if gene.strand not in ("+", "-"):
            continue  # no strand, no reading frame: nothing to label
        column = 0 if gene.strand == "+" else 2
        for transcript in gene.transcripts:
            _paint_transcript(track[:, column], track[:, column + 1], gene, transcript)
    return track


def _paint(region: np.ndarray, lo: int, hi: int, label: int) -> None:
    """Label bases lo..hi (inclusive) where nothing of higher priority is yet."""
    part = region[lo : hi + 1]
    part[_PRIORITY[part] < _PRIORITY[label]] = label


def _paint_transcript(region: np.ndarray, boundary: np.ndarray, gene: Gene, transcript) -> None:
    plus = gene.strand == "+"
    exons = transcript.exons
    for (_, left_end), (right_start, _) in zip(exons, exons[1:], strict=False):
        if right_start - left_end > 1:
            _paint(region, left_end + 1, right_start - 1, INTRON)
            # The 5' splice site (donor) opens the intron in the direction of transcription.
            first, last = (left_end + 1, right_start - 1) if plus else (right_start - 1, left_end + 1)
            _mark(boundary, first, 2 if plus else -2, DONOR)
            _mark(boundary, last, -2 if plus else 2, ACCEPTOR)
    for start, end in exons:
        _paint(region, start, end, UTR)
    # The ends of the CDS, then of the transcript (a start / stop codon wins where the two coincide), unless a
    # window edge (or the source) cut them.
    five_open, three_open = (gene.open_left, gene.open_right) if plus else (gene.open_right, gene.open_left)
    five_edge, three_edge = (gene.start, gene.end) if plus else (gene.end, gene.start)
    segments = transcript.cds_segments()
    if segments:
        phases = transcript.cds_phases(gene.strand)
        _paint_cds(region, segments, phases, plus)
        cds_five = segments[0][0] if plus else segments[-1][1]
        cds_three = segments[-1][1] if plus else segments[0][0]
        # A chain that starts (ends) mid-codon is a partial model: no start (stop) codon to mark.
        if phases[0 if plus else -1] == 0 and not (five_open and cds_five == five_edge):
            _mark_codon(boundary, segments, plus, START_CODON)
        whole_codons = (sum(e - s + 1 for s, e in segments) - phases[0 if plus else -1]) % 3 == 0
        if whole_codons and not (three_open and cds_three == three_edge):
            _mark_codon(boundary, segments, not plus, STOP_CODON)
    five, three = (transcript.start, transcript.end) if plus else (transcript.end, transcript.start)
    if not (five_open and five == five_edge):
        _mark(boundary, five, 1, TRANSCRIPT_START)
    if not (three_open and three == three_edge):
        _mark(boundary, three, 1, TRANSCRIPT_END)


def _paint_cds(region: np.ndarray, segments, phases, plus: bool) -> None:
    """Codon position of every CDS base, counted from each segment's phase in the direction of transcription."""
    for (start, end), phase in zip(segments, phases, strict=True):
        n = end - start + 1
        positions = (np.arange(n) - phase) % 3
        if not plus:
            positions = positions[::-1]  # the segment is read from `end` down to `start`
        part = region[start : end + 1]
        free = _PRIORITY[part] < _PRIORITY[CDS0]
        part[free] = CDS0 + positions[free]


def _mark(boundary: np.ndarray, first: int, span: int, label: int) -> None:
    """Mark |span| bases from `first` (rightwards for span > 0, leftwards for span < 0)."""
    lo, hi = (first, first + span - 1) if span > 0 else (first + span + 1, first)
    lo, hi = max(lo, 0), min(hi, len(boundary) - 1)
    if lo <= hi:
        part = boundary[lo : hi + 1]
        part[part == NONE] = label


def _mark_codon(boundary: np.ndarray, segments, from_left: bool, label: int) -> None:
    """The three CDS bases at the left or right end of the CDS chain (an intron may split the codon)."""
    codon: list[int] = []
    for start, end in segments if from_left else reversed(segments):
        run = range(start, end + 1) if from_left else range(end, start - 1, -1)
        codon += list(run[: 3 - len(codon)])
        if len(codon) == 3:
            break
    for base in codon:
        if boundary[base] == NONE:
            boundary[base] = label
