"""DNA as codes, and the open reading frames of a sequence: what the ORF floor calls and the annotator's
long-ORF rule adds. The codes and codon ids here are the ones the constrained decoder and the start scorer
read too (`annotation.constraints`, `annotation.starts`).

Vectorised over codons with numpy: a 4 Mbp genome takes about a second.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from core.features import DIRECT, Gene, Transcript

# A=0 C=1 G=2 T=3 (either case, U as T: no upper-cased copy of a contig is needed), anything else 4. One
# byte a base and a codon: a 20 Mbp contig's arrays stay tens of MB.
_BASE_CODES = np.full(256, 4, dtype=np.uint8)
for _letters in (b"ACGT", b"acgt", b"ACGU", b"acgu"):
    _BASE_CODES[np.frombuffer(_letters, dtype=np.uint8)] = np.arange(4)
COMPLEMENT = np.array([3, 2, 1, 0, 4], dtype=np.uint8)  # indexed by base code
UNKNOWN_CODON = 64  # the codon id of any codon with a base that is not A, C, G or T


def base_codes(dna: str) -> np.ndarray:
    """The code of each base of `dna` (uint8: A=0 C=1 G=2 T=3, either case, U as T; anything else 4)."""
    return _BASE_CODES[np.frombuffer(dna.encode("ascii", "replace"), dtype=np.uint8)]


def codon_id(codon: str) -> int:
    """16a + 4b + c of a codon of known bases."""
    a, b, c = (int(code) for code in base_codes(codon))
    return 16 * a + 4 * b + c


def codon_ids(codes: np.ndarray, step: int = 1) -> np.ndarray:
    """The id (`codon_id`, `UNKNOWN_CODON` where a base is unknown) of the codon at every `step`-th
    position of `codes` that starts a whole codon: len - 2 of them at step 1, one per codon at step 3."""
    n = max(0, (len(codes) - 3 + step) // step)
    first, second, third = (codes[k : k + step * n : step] for k in range(3))
    ids = 16 * first + 4 * second + third
    ids[(first > 3) | (second > 3) | (third > 3)] = UNKNOWN_CODON
    return ids


def codon_table(codons: Iterable[str]) -> np.ndarray:
    """A lookup over codon ids: True for `codons` (never for `UNKNOWN_CODON`)."""
    table = np.zeros(UNKNOWN_CODON + 1, dtype=bool)
    table[[codon_id(codon) for codon in codons]] = True
    return table


def coding_gene(start: int, end: int, strand: str, open_left=False, open_right=False) -> Gene:
    """A single-segment protein-coding gene, NCBI style (gene -> CDS)."""
    transcript = Transcript(DIRECT, exons=((start, end),), cds=(start, end))
    return Gene(start, end, strand, transcripts=(transcript,), open_left=open_left, open_right=open_right)


def open_reading_frames(
    sequence: str, start_codons: Iterable[str], stop_codons: Iterable[str], min_len: int
) -> list[Gene]:
    """Every ORF of at least `min_len` bp (start to stop codon inclusive) on both strands of `sequence` (any
    case, U as T), as 1-based single-exon coding genes, sorted. Each stop codon closes at most one ORF, which
    takes its longest start: the first start codon in frame after the previous stop or unknown base (N).
    ORFs running off an end are not called."""
    starts, stops = codon_table(start_codons), codon_table(stop_codons)
    bases = base_codes(sequence)
    length = len(bases)
    found = [coding_gene(s + 1, e + 1, "+") for s, e in _strand_orfs(bases, starts, stops, min_len)]
    bases = COMPLEMENT[bases][::-1]  # the reverse complement, in place of the forward codes
    found += [
        coding_gene(length - e, length - s, "-") for s, e in _strand_orfs(bases, starts, stops, min_len)
    ]
    return sorted(found)


def _strand_orfs(
    bases: np.ndarray, starts: np.ndarray, stops: np.ndarray, min_len: int
) -> Iterator[tuple[int, int]]:
    """0-based inclusive (start, end) of the ORFs of the strand that `bases` (codes) spell, stop included;
    `starts` and `stops` are `codon_table`s."""
    for frame in range(3):  # one frame at a time: a third of the sequence in each array
        codons = codon_ids(bases[frame:], step=3)
        is_stop = stops[codons]
        stop_at = np.flatnonzero(is_stop)
        start_at = np.flatnonzero(starts[codons])
        # A codon with an unknown base bars the way like a stop, but ends no ORF.
        barrier_at = np.flatnonzero(is_stop | (codons == UNKNOWN_CODON))
        if not len(start_at):
            continue
        before = np.searchsorted(barrier_at, stop_at) - 1  # each stop is a barrier: the one before it
        previous_barrier = np.where(before >= 0, barrier_at[np.maximum(before, 0)], -1)
        # First start after the previous barrier; it belongs to this ORF if it comes before this stop.
        first_start = np.searchsorted(start_at, previous_barrier, side="right")
        has_start = first_start < len(start_at)
        start_codon = start_at[np.minimum(first_start, len(start_at) - 1)]
        keep = has_start & (start_codon < stop_at) & ((stop_at - start_codon + 1) * 3 >= min_len)
        for start, stop in zip(start_codon[keep], stop_at[keep], strict=True):
            yield frame + 3 * int(start), frame + 3 * int(stop) + 2
