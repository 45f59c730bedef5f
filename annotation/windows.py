"""Tiling contigs into model windows and stitching the windows' genes back into one annotation.

Tiling: a contig is split at long runs of N (nothing to annotate there), and each remaining stretch is
covered by windows of at most `size` bp that overlap their neighbours by about `overlap` bp, so a gene
shorter than the overlap is seen whole by at least one window.

Stitching (`stitch`), on contig-level 1-based genes:
1. a gene cut by a window edge that has sequence beyond it (another window sees that side) is a *piece*;
   the piece of window w that is cut on the right is joined with the piece of window w + 1 that is cut
   on the left when they agree (strand, type, transcript types), at the middle of the windows' overlap;
2. pieces that are still cut are dropped: a whole copy from the neighbouring window (or nothing) wins;
3. predictions of different windows that overlap on the same strand by at least half of the shorter one
   are the same locus seen twice, and so are genes of one window on the same strand with the same 3' end
   (a gene written twice, or two starts of one stop): the higher score wins, each copy removed is counted;
4. coding-gene mode: long ORFs (`LONG_ORF` bp or more) that no gene of step 3 ends at join the genes,
   unscored; coding genes joined from pieces or open at a sequence end (decoding exempts both from the
   minimum length) leave when shorter than `min_coding_length` (two thirds of it at a sequence end), and
   so do spliced ones with fewer coding bases (decoding holds their span to it, not their exons; on
   held-out S. pombe a 25-minute model's exon F1 0.221 -> 0.377, its transcript F1 0.460 -> 0.557);
5. with `move_start` (coding-gene mode: `starts.pick_start`, the ORF's best start codon), each gene's
   start moved, before the overlaps are weighed, since there the longer gene stays and a real gene decoded
   with a late start is shorter than it is (longest starts, demo's model, held-out region: gene 3' / exact /
   nucleotide F1 0.82 / 0.42 / 0.83 as decoded, 0.82 / 0.54 / 0.92 moved after the overlaps, 0.89 / 0.58 /
   0.95 before them);
6. with a `max_overlap` (coding-gene mode, where every gene is one ORF or one spliced CDS chain): of two
   coding genes that overlap by more than `max_overlap` bp, on either strand, the one with more coding bases
   stays, a long ORF only if `LONG_ORF_HANDICAP` times more (coding bases, not span: a small model's
   eukaryote calls are often short exons around long introns; on held-out S. pombe, a CDS-chain model's
   exon / transcript F1 0.169 / 0.353 by span, 0.248 / 0.464 by coding bases). Bacterial genes rarely
   overlap by more than a few codons, while a small model's false calls are mostly ORFs inside or across a
   real gene (on another frame or strand), which the decoder scores no lower than the real one (see
   `MAX_OVERLAP`).
Open edges at a contig end (or an N gap) are real: they stay `open_left` / `open_right`.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from core.features import Gene, Transcript
from genome_io.fasta import normalise_dna

# Runs of N at least this long split a contig: no window is spent on them.
MIN_N_GAP = 100
# Coding-gene mode: bp two predicted coding genes may share. On the demo model (held-out C. diphtheriae
# and unseen B. subtilis, README) 60 and 120 bp scored the same; greedy decoding's gene 3' F1 rose from
# 0.65 / 0.73 to 0.79 / 0.80 (a tie-break by the decoder's own score instead of length lost accuracy).
MAX_OVERLAP = 60
# Coding-gene mode: ORFs at least this long (the ORF floor's) join the calls, and win an overlap against a
# call only when this many times longer than it. A small model misses long genes the floor finds and writes
# short ORFs inside them (T. pallidum after 12 CPU-minutes: 119 missed genes >= 600 bp, 91 of 116 calls
# < 400 bp false). Handicap 1, 1.25, 1.5, 2 (a scratch measurement on the previous demo model's calls): gene
# 3' F1 on 200 kbp of unseen M. abscessus 0.764 / 0.767 / 0.756 / 0.745, on a 162 kbp Paracoccus contig
# 0.500 / 0.518 / 0.543 / 0.536 (no rule: 0.720, 0.552).
LONG_ORF = 600
LONG_ORF_HANDICAP = 1.5


@dataclass(frozen=True)
class Window:
    seqid: str
    start: int  # 0-based offset of the window's first base in its contig
    sequence: str
    open_left: bool = False  # the contig continues on the left, in another window
    open_right: bool = False

    @property
    def end(self) -> int:
        """0-based offset one past the window's last base."""
        return self.start + len(self.sequence)


def stretches(sequence: str, min_gap: int = MIN_N_GAP) -> Iterator[tuple[int, int]]:
    """Half-open spans of `sequence` between runs of at least `min_gap` N (case-insensitive)."""
    position = 0
    for gap in re.finditer(f"[Nn]{{{min_gap},}}", sequence):
        if gap.start() > position:
            yield position, gap.start()
        position = gap.end()
    if position < len(sequence):
        yield position, len(sequence)


def gap_bases(sequence: str, min_gap: int = MIN_N_GAP) -> int:
    """Bases of `sequence` in runs of at least `min_gap` N: the bases `tile` gives no window."""
    return len(sequence) - sum(hi - lo for lo, hi in stretches(sequence, min_gap))


def covered_bases(windows: Sequence[Window]) -> int:
    """Bases of one contig inside at least one of its windows (in contig order, as `tile` gives them)."""
    covered = reach = 0
    for window in windows:
        covered += max(0, window.end - max(window.start, reach))
        reach = max(reach, window.end)
    return covered


def window_starts(length: int, size: int, overlap: int) -> list[int]:
    """Evenly spread starts of the fewest windows of `size` covering `length` with >= `overlap` overlap."""
    if not 0 <= overlap < size:
        raise ValueError(f"overlap {overlap} must be in [0, window size {size})")
    if length <= size:
        return [0]
    count = math.ceil((length - size) / (size - overlap)) + 1
    return [round(i * (length - size) / (count - 1)) for i in range(count)]


def tile(seqid: str, sequence: str, size: int, overlap: int, min_gap: int = MIN_N_GAP) -> list[Window]:
    """Windows over one contig (`normalise_dna`: upper case, U as T), skipping all-N stretches."""
    windows = []
    for lo, hi in stretches(sequence, min_gap):
        starts = window_starts(hi - lo, size, overlap)
        for i, offset in enumerate(starts):
            begin = lo + offset
            windows.append(
                Window(
                    seqid,
                    begin,
                    normalise_dna(sequence[begin : min(begin + size, hi)]),
                    open_left=i > 0,
                    open_right=i < len(starts) - 1,
                )
            )
    return windows


@dataclass(frozen=True)
class Prediction:
    """One gene predicted by one or more (joined) windows, at contig level (1-based)."""

    gene: Gene
    score: float
    windows: tuple[int, ...]  # indices of the windows it came from
    cut_left: bool = False  # cut by a window edge that another window sees beyond
    cut_right: bool = False


def place(window: Window, index: int, genes: Sequence[Gene], scores: Sequence[float]) -> list[Prediction]:
    """Window-level (0-based) genes -> contig-level (1-based) predictions with their cut edges."""
    last = len(window.sequence) - 1
    out = []
    for gene, score in zip(genes, scores, strict=True):
        cut_left = window.open_left and gene.start == 0 and gene.open_left
        cut_right = window.open_right and gene.end == last and gene.open_right
        placed = replace(gene.shift(window.start + 1), open_left=gene.open_left and not cut_left)
        placed = replace(placed, open_right=gene.open_right and not cut_right)
        out.append(Prediction(placed, float(score), (index,), cut_left, cut_right))
    return out


@dataclass
class StitchStats:
    predicted: int = 0
    joined: int = 0  # pairs of pieces joined across a window edge
    dropped_pieces: int = 0  # cut pieces with no partner (their locus is left to the whole copies)
    duplicates: int = 0  # lower-scoring copies of a locus (from another window, or one window's repeats)
    overlapping: int = 0  # coding genes overlapping a longer one by more than `max_overlap` bp
    moved_starts: int = 0  # coding genes whose start `move_start` moved
    long_orfs: int = 0  # long ORFs kept as genes that no window wrote
    short_genes: int = 0  # joined, sequence-end or spliced coding genes under `min_coding_length` (`stitch`)


def stitch(
    predictions: Sequence[Prediction],
    windows: Sequence[Window],
    stats: StitchStats | None = None,
    max_overlap: int | None = None,
    move_start: Callable[[Gene], Gene] | None = None,
    long_orfs: Sequence[Gene] = (),
    min_coding_length: int = 0,
) -> list[Prediction]:
    """One prediction per locus from the overlapping windows' predictions of one contig (see module doc);
    `long_orfs` (contig-level ORFs) join them as genes that no window wrote (`windows` empty, score -inf)
    unless a coding call ends at their stop;
    with `move_start`, each gene's start as it says; with `max_overlap`, no two coding genes overlapping by
    more than that many bp (the one with more coding bases stays, a long ORF only with `LONG_ORF_HANDICAP`
    times more);
    coding genes joined from window pieces or open at a sequence end are dropped when shorter than
    `min_coding_length` bp (two thirds of it at a sequence end, Prodigal's ratio of edge to whole genes,
    60 / 90 bp), and spliced ones with fewer coding bases: the decoder holds the other genes to it, but
    exempts pieces and holds a spliced gene's span."""
    stats = stats if stats is not None else StitchStats()
    stats.predicted += len(predictions)
    whole = [p for p in predictions if not (p.cut_left or p.cut_right)]
    whole += _join_pieces([p for p in predictions if p.cut_left or p.cut_right], windows, stats)
    kept = _resolve_duplicates(whole, stats)
    # Only a coding call explains an ORF: one the grammar closed without a CDS (an exon chain that is no ORF)
    # must not keep it out.
    written = {(p.gene.strand, _three_prime(p.gene)) for p in kept if _coding(p)}
    kept += [
        Prediction(orf, -math.inf, ()) for orf in long_orfs if (orf.strand, _three_prime(orf)) not in written
    ]
    if min_coding_length:
        long_enough = [p for p in kept if not _too_short(p, min_coding_length)]
        stats.short_genes += len(kept) - len(long_enough)
        kept = long_enough
    if move_start is not None:
        moved = [replace(p, gene=move_start(p.gene)) for p in kept]
        stats.moved_starts += sum(a.gene != b.gene for a, b in zip(kept, moved, strict=True))
        kept = moved
    kept = kept if max_overlap is None else _resolve_overlaps(kept, max_overlap, stats)
    stats.long_orfs += sum(not p.windows for p in kept)
    return sorted(kept, key=lambda p: p.gene)


def _join_pieces(pieces: list[Prediction], windows: Sequence[Window], stats: StitchStats) -> list[Prediction]:
    """Join right-cut pieces with left-cut pieces of the next window, left to right; return whole genes."""
    done: list[Prediction] = []
    waiting: list[Prediction] = []  # right-cut pieces (possibly already joined) of the previous window
    for index in sorted({p.windows[-1] for p in pieces}):
        here = [p for p in pieces if p.windows[-1] == index]
        extended = []
        for piece in here:
            if piece.cut_left:
                cut = (windows[index].start + windows[index - 1].end) // 2  # middle of the overlap
                joins = [(w, _join(w, piece, cut)) for w in waiting if w.windows[-1] == index - 1]
                joins = [(w, joined) for w, joined in joins if joined is not None]
                if joins:
                    partner, piece = max(joins, key=lambda j: j[0].score)
                    waiting.remove(partner)
                    stats.joined += 1
            if piece.cut_left:  # no partner: a neighbour's whole copy (if any) covers this locus
                stats.dropped_pieces += 1
            elif piece.cut_right:
                extended.append(piece)
            else:
                done.append(piece)
        stats.dropped_pieces += len(waiting)
        waiting = extended
    stats.dropped_pieces += len(waiting)
    return done


def _join(left: Prediction, right: Prediction, cut: int) -> Prediction | None:
    """The two pieces of one gene as one, left bases <= `cut` from `left`, the rest from `right`;
    None when they disagree (strand, type, transcript types) or do not overlap across the cut."""
    a, b = left.gene, right.gene
    if a.strand != b.strand or a.type != b.type or not a.start <= cut < b.end or b.start > a.end:
        return None
    a, b = a.clip(a.start, cut), b.clip(cut + 1, b.end)
    if [t.type for t in a.transcripts] != [t.type for t in b.transcripts]:
        return None
    transcripts = tuple(
        _join_transcripts(x, y, left.gene.strand) for x, y in zip(a.transcripts, b.transcripts, strict=True)
    )
    gene = replace(
        left.gene,
        end=right.gene.end,
        transcripts=tuple(sorted(transcripts)),
        open_left=left.gene.open_left,
        open_right=right.gene.open_right,
    )
    return Prediction(
        gene,
        (left.score + right.score) / 2,
        left.windows + right.windows,
        cut_left=left.cut_left,
        cut_right=right.cut_right,
    )


def _join_transcripts(left: Transcript, right: Transcript, strand: str) -> Transcript:
    """Left and right parts of one transcript as one exon chain (an exon across the cut is rejoined)."""
    exons = [*left.exons, *right.exons]
    if left.end + 1 == right.start:
        exons[len(left.exons) - 1 : len(left.exons) + 1] = [(left.exons[-1][0], right.exons[0][1])]
    coding = [t for t in (left, right) if t.cds is not None]
    cds = (coding[0].cds[0], coding[-1].cds[1]) if coding else None
    five_prime = (coding[-1] if strand == "-" else coding[0]) if coding else None  # its phase is the chain's
    return Transcript(left.type, tuple(exons), cds, five_prime.phase if five_prime else 0)


def _resolve_duplicates(predictions: list[Prediction], stats: StitchStats) -> list[Prediction]:
    """Greedy by score within clusters of overlapping same-strand predictions of different windows."""
    kept: list[Prediction] = []
    for cluster in _clusters(predictions):
        accepted: list[Prediction] = []
        for p in sorted(cluster, key=lambda p: -p.score):
            if any(_same_locus(p, q) for q in accepted):
                stats.duplicates += 1
            else:
                accepted.append(p)
        kept += accepted
    return sorted(kept, key=lambda p: p.gene)


def _resolve_overlaps(
    predictions: list[Prediction], max_overlap: int, stats: StitchStats
) -> list[Prediction]:
    """Most coding bases first (a long ORF no window wrote as if `LONG_ORF_HANDICAP` times fewer; then by
    score), each coding gene kept unless it overlaps a kept coding gene by more than `max_overlap` bp; genes
    without a CDS are left alone. A candidate's rivals are the kept genes that start at most the longest
    gene's span before it (found by bisection: a genome has thousands)."""

    def rank(p: Prediction) -> tuple[float, float]:
        return (-_coding_bases(p.gene) / (1 if p.windows else LONG_ORF_HANDICAP), -p.score)

    candidates = sorted(filter(_coding, predictions), key=rank)
    longest = max((_length(p.gene) for p in candidates), default=0)
    starts: list[int] = []  # of the kept coding genes, sorted, parallel to `kept`
    kept: list[Prediction] = []
    for p in candidates:
        rivals = kept[
            bisect.bisect_left(starts, p.gene.start - longest) : bisect.bisect_right(starts, p.gene.end)
        ]
        if any(_overlap(p.gene, q.gene) > max_overlap for q in rivals):
            stats.overlapping += p.windows != ()  # a long ORF that loses was never a call
        else:
            index = bisect.bisect_right(starts, p.gene.start)
            starts.insert(index, p.gene.start)
            kept.insert(index, p)
    return sorted(kept + [p for p in predictions if not _coding(p)], key=lambda p: p.gene)


def _coding(p: Prediction) -> bool:
    return any(t.cds is not None for t in p.gene.transcripts)


def _length(gene: Gene) -> int:
    return gene.end - gene.start + 1


def _coding_bases(gene: Gene) -> int:
    """The coding bases of a gene's longest CDS (its exons' share of it, not the introns)."""
    return max((sum(e - s + 1 for s, e in t.cds_segments()) for t in gene.transcripts if t.cds), default=0)


def _too_short(p: Prediction, min_coding_length: int) -> bool:
    """A coding gene that decoding did not hold to `min_coding_length` and is shorter than it (two thirds of
    it when open): joined from pieces or open at a sequence end, or spliced, whose coding bases count, not
    its span (the grammar holds a spliced gene's span to it)."""
    opened = p.gene.open_left or p.gene.open_right
    spliced = any(len(t.exons) > 1 for t in p.gene.transcripts)
    if not _coding(p) or not (opened or len(p.windows) > 1 or spliced):
        return False
    length = _coding_bases(p.gene) if spliced else _length(p.gene)
    return length < (min_coding_length * 2 // 3 if opened else min_coding_length)


def _overlap(a: Gene, b: Gene) -> int:
    return min(a.end, b.end) - max(a.start, b.start) + 1


def _clusters(predictions: list[Prediction]) -> Iterator[list[Prediction]]:
    for strand in sorted({p.gene.strand for p in predictions}):
        cluster: list[Prediction] = []
        reach = -1
        for p in sorted((p for p in predictions if p.gene.strand == strand), key=lambda p: p.gene.start):
            if cluster and p.gene.start > reach:
                yield cluster
                cluster = []
            cluster.append(p)
            reach = max(reach, p.gene.end) if len(cluster) > 1 else p.gene.end
        if cluster:
            yield cluster


def _same_locus(a: Prediction, b: Prediction) -> bool:
    # Overlapping genes of one window both stay (nested or overlapping genes are real); one 3' end is one gene.
    if a.windows == b.windows:
        return a.gene.strand == b.gene.strand and _three_prime(a.gene) == _three_prime(b.gene)
    return same_locus(a.gene, b.gene)


def _three_prime(gene: Gene) -> int | tuple[int, int]:
    return {"+": gene.end, "-": gene.start}.get(gene.strand, (gene.start, gene.end))  # "." : the whole span


def same_locus(a: Gene, b: Gene) -> bool:
    """Two predictions of one locus: same strand, overlapping by at least half of the shorter gene."""
    shared = _overlap(a, b)
    shorter = min(a.end - a.start, b.end - b.start) + 1
    return a.strand == b.strand and shared * 2 >= shorter
