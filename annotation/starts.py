"""Where a bacterial gene starts: each start codon of its open reading frame weighed by a linear model.

A gene's stop fixes its ORF; its start is one of the start codons in frame between the previous in-frame
stop and that stop. The decoder of a small model picks late ones; the longest-ORF rule (the first of
them) is right for only 47-67 % of the curated genes of the shared bacteria, because the real start is
often a later ATG behind a Shine-Dalgarno motif. So each candidate gets features: its codon, the longest
piece of the Shine-Dalgarno core AGGAGG 3-15 bp upstream, the 20 bases upstream, and its rank from the
ORF's first start; and a conditional logit (a softmax over one ORF's candidates) weighs them.

train.py fits the weights on the training genes (`training.starts`) and saves them in the model's config
(`start_weights`, feature name -> weight, readable in config.json); `pick_start` applies them. With no
weights every candidate scores 0 and the first wins: the longest start, as the ORF floor takes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
from Bio.Seq import reverse_complement

from core.features import Gene
from core.orfs import UNKNOWN_CODON, base_codes, codon_id, codon_ids
from genome_io.fasta import normalise_dna

from .constraints import GeneticCode

UPSTREAM = 20  # bp before a start codon that its features read
SHINE_DALGARNO = "AGGAGG"  # the 16S rRNA 3' end's complement, in every bacterial phylum
SPACERS = (3, 15)  # bp between a Shine-Dalgarno motif and the start codon
MOTIFS = sorted(
    {SHINE_DALGARNO[i:j] for i in range(6) for j in range(i + 3, 7)}, key=len, reverse=True
)  # its pieces of >= 3 bp, longest first
CODONS = ("ATG", "GTG", "TTG")
RANKS = 5  # ranks 0 .. 3 and "4 or later", plus log(1 + rank)

FEATURES: tuple[str, ...] = (
    *(f"codon {c}" for c in (*CODONS, "other")),
    *(f"shine-dalgarno {n}" for n in (0, 3, 4, 5, 6)),
    *(f"rank {r}" for r in ("0", "1", "2", "3", "4+")),
    "log rank",
    *(f"base {i - UPSTREAM} {b}" for i in range(UPSTREAM) for b in "ACGT"),
)
_CODON_COLUMN = {codon_id(c): i for i, c in enumerate(CODONS)}  # any other start codon: "codon other"
_SD_COLUMN = {n: FEATURES.index(f"shine-dalgarno {n}") for n in (0, 3, 4, 5, 6)}
_RANK_COLUMN = FEATURES.index("rank 0")
_BASE_COLUMN = FEATURES.index(f"base {-UPSTREAM} A")


@dataclass
class OrfStarts:
    """The start codons of one gene's ORF, first (most upstream) first."""

    five_prime: np.ndarray  # each candidate's 5' coordinate, 1-based on the sequence (start or end by strand)
    lengths: np.ndarray  # bp from each candidate to the gene's 3' end
    features: np.ndarray  # float32 [candidates, len(FEATURES)]
    at_sequence_end: bool  # no stop or N before the first: the ORF runs to the end of the sequence


def orf_starts(gene: Gene, dna: str, code: GeneticCode) -> OrfStarts | None:
    """The start codons in frame with `gene` (1-based on `dna`) from the first after the previous in-frame
    stop, N or sequence end to the gene's 3' end, with their features; None when it has none."""
    plus = gene.strand == "+"
    five, length = (gene.start if plus else gene.end), gene.end - gene.start + 1
    reach = 384  # bp upstream to look at first: in-frame stops come every ~20 codons
    while True:
        if plus:
            first = max(0, five - 1 - reach)
            upstream, at_end = dna[first : five - 1], first == 0
            body = dna[five - 1 : five - 1 + length // 3 * 3]
        else:
            last = min(len(dna), five + reach)
            upstream, at_end = reverse_complement(dna[five:last]), last == len(dna)
            body = reverse_complement(dna[five - length // 3 * 3 : five])
        trim = len(upstream) % 3  # whole codons in the gene's frame
        text = normalise_dna(upstream[trim:] + body)
        codes = base_codes(text)
        codons = codon_ids(codes, step=3)
        before = (len(upstream) - trim) // 3  # codons upstream of the gene's own start: where barriers are
        barriers = np.flatnonzero(code.is_stop[codons[:before]] | (codons[:before] == UNKNOWN_CODON))
        if (len(barriers) and 3 * barriers[-1] >= UPSTREAM) or at_end:
            break
        reach *= 4
    if code.is_stop[codons[before:-1]].any():  # not an ORF (a pseudogene's CDS): no start to choose
        return None
    after = barriers[-1] + 1 if len(barriers) else 0
    index = after + np.flatnonzero(code.is_start[codons[after:]])
    if not len(index):
        return None
    offsets = 3 * (len(codons) - index)  # bp from each candidate to the end of `text`
    lengths = offsets + (length - len(body))
    first_bp = first + trim if plus else last - trim  # `text`'s first base, 1-based / its 0-based end
    five_prime = first_bp + 3 * index + 1 if plus else first_bp - 3 * index
    return OrfStarts(five_prime, lengths, _features(text, codons, index), not len(barriers))


def _features(text: str, codons: np.ndarray, index: np.ndarray) -> np.ndarray:
    features = np.zeros((len(index), len(FEATURES)), np.float32)
    for row, k in enumerate(index):
        features[row, _CODON_COLUMN.get(int(codons[k]), len(CODONS))] = 1
        p = 3 * int(k)
        flank = text[max(0, p - UPSTREAM) : p].rjust(UPSTREAM, "N")
        spacer = flank[: UPSTREAM - SPACERS[0]]
        motif = next((len(m) for m in MOTIFS if m in spacer[max(0, UPSTREAM - SPACERS[1] - len(m)) :]), 0)
        features[row, _SD_COLUMN[motif]] = 1
        features[row, _RANK_COLUMN + min(row, RANKS - 1)] = 1
        features[row, _RANK_COLUMN + RANKS] = np.log1p(row)
        bases = base_codes(flank)
        known = bases < 4
        features[row, _BASE_COLUMN + 4 * np.flatnonzero(known) + bases[known]] = 1
    return features


def start_weight_vector(weights: Mapping[str, float] | None) -> np.ndarray | None:
    """A config's `start_weights` as a vector over `FEATURES` (None stays None)."""
    if weights is None:
        return None
    unknown = sorted(set(weights) - set(FEATURES))
    if unknown:
        raise ValueError(f"start_weights name features this code does not compute: {', '.join(unknown[:3])}")
    return np.array([weights.get(name, 0.0) for name in FEATURES], np.float32)


def movable(gene: Gene) -> bool:
    """A coding gene of one exon (CDS = exon = gene) on + or - with a closed 5' end: its start can move."""
    span = (gene.start, gene.end)
    (transcript, *more) = gene.transcripts or (None,)
    one_exon = transcript is not None and not more and transcript.exons == (span,) and transcript.cds == span
    five_open = gene.open_left if gene.strand == "+" else gene.open_right
    return one_exon and not five_open and gene.strand in ("+", "-")


def pick_start(
    gene: Gene, dna: str, code: GeneticCode, weights: np.ndarray | None = None, min_length: int = 0
) -> Gene:
    """`gene` (1-based, on `dna`) with its start moved to its ORF's best start codon by `weights` (the
    first of the ORF, its longest start, when None), among those leaving it at least `min_length` bp. A
    gene that is not `movable` comes back as it is."""
    if not movable(gene):
        return gene
    orf = orf_starts(gene, dna, code)
    if orf is None:
        return gene
    scores = orf.features @ weights if weights is not None else np.zeros(len(orf.lengths), np.float32)
    scores[(orf.lengths < min_length) & (np.arange(len(scores)) > 0)] = -np.inf
    five = int(orf.five_prime[int(np.argmax(scores))])
    start, end = (five, gene.end) if gene.strand == "+" else (gene.start, five)
    transcript = replace(gene.transcripts[0], exons=((start, end),), cds=(start, end))
    return replace(gene, start=start, end=end, transcripts=(transcript,))
