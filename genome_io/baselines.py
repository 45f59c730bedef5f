"""Prokaryote baselines to score GFF-MoE against: Prodigal (the tool people use) and the ORF floor.

Both return genome-level genes (1-based, per seqid) in the NCBI prokaryote shape: one `DIRECT`
transcript whose single exon is the CDS, stop codon included.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from os import PathLike

import numpy as np
import pyrodigal
from Bio.Data.CodonTable import unambiguous_dna_by_id
from Bio.Seq import reverse_complement

from tokenization.features import DIRECT, Gene, Transcript

from .fasta import normalise_dna, read_fasta

Records = str | PathLike | Iterable[tuple[str, str]]

# Prodigal's own rule: below this much sequence, single-genome training is unreliable (and refused).
MIN_TRAINING_BP = 20_000
# The starts prokaryotes actually use (~90% ATG, GTG, TTG); table 11's rare ATT/ATC/ATA/CTG are left
# out so the floor's "longest start" does not run into upstream non-starts.
ORF_START_CODONS = ("ATG", "GTG", "TTG")


def coding_gene(start: int, end: int, strand: str, open_left=False, open_right=False) -> Gene:
    """A single-segment protein-coding gene, NCBI style (gene -> CDS)."""
    transcript = Transcript(DIRECT, exons=((start, end),), cds=(start, end))
    return Gene(start, end, strand, transcripts=(transcript,), open_left=open_left, open_right=open_right)


def _records(fasta: Records) -> list[tuple[str, str]]:
    if isinstance(fasta, str | PathLike):
        return list(read_fasta(fasta))
    return list(fasta)


def prodigal_genes(
    fasta: Records, meta: bool | None = None, translation_table: int = 11
) -> dict[str, list[Gene]]:
    """Prodigal's genes (pyrodigal) for a FASTA path or (seqid, sequence) records.

    Single-genome mode trains on all contigs together, then finds genes on each; `meta=None` picks
    metagenomic mode (pre-trained models) when there is less than `MIN_TRAINING_BP` to train on.
    Genes running off a contig edge are open on that side (pyrodigal's `partial_begin` and
    `partial_end` name the left and right genomic edges whatever the strand). `translation_table`
    applies to training; metagenomic mode uses the tables of its pre-trained models.
    """
    records = [(seqid, normalise_dna(sequence)) for seqid, sequence in _records(fasta)]
    if meta is None:
        meta = sum(len(sequence) for _, sequence in records) < MIN_TRAINING_BP
    finder = pyrodigal.GeneFinder(meta=meta)
    if not meta:
        finder.train(*(sequence for _, sequence in records), translation_table=translation_table)
    genes = {}
    for seqid, sequence in records:
        genes[seqid] = [
            coding_gene(
                g.begin,
                g.end,
                "+" if g.strand == 1 else "-",
                open_left=g.partial_begin,
                open_right=g.partial_end,
            )
            for g in finder.find_genes(sequence)
        ]
    return genes


def orf_floor_genes(fasta: Records, min_len: int = 600, translation_table: int = 11) -> dict[str, list[Gene]]:
    """The trivial floor: every ORF of at least `min_len` bp (start to stop codon inclusive), both strands.

    Each stop codon of `translation_table` (Biopython's tables) closes at most one ORF, which takes
    its longest start: the first ATG/GTG/TTG in frame after the previous stop. ORFs running off a
    contig end are not called. Vectorised over codons with numpy: a 4 Mbp genome takes about a second.
    """
    stops = unambiguous_dna_by_id[translation_table].stop_codons
    genes = {}
    for seqid, sequence in _records(fasta):
        sequence = normalise_dna(sequence)
        length = len(sequence)
        found = [coding_gene(s + 1, e + 1, "+") for s, e in _strand_orfs(sequence, stops, min_len)]
        found += [
            coding_gene(length - e, length - s, "-")
            for s, e in _strand_orfs(reverse_complement(sequence), stops, min_len)
        ]
        genes[seqid] = sorted(found)
    return genes


# A=0 C=1 G=2 T=3, anything else 4: a codon with an N is neither a start nor a stop.
_BASE_CODES = np.full(256, 4, dtype=np.int64)
_BASE_CODES[np.frombuffer(b"ACGT", dtype=np.uint8)] = np.arange(4)


def _encode(sequence: str) -> np.ndarray:
    return _BASE_CODES[np.frombuffer(sequence.encode("ascii", "replace"), dtype=np.uint8)]


def _codon_codes(codons: Iterable[str]) -> np.ndarray:
    return np.array([_encode(codon) @ [25, 5, 1] for codon in codons])


def _strand_orfs(sequence: str, stop_codons: list[str], min_len: int) -> Iterable[tuple[int, int]]:
    """0-based inclusive (start, end) of the plus-strand ORFs of `sequence`, stop codon included."""
    bases = _encode(sequence)
    if len(bases) < 3:
        return
    # Code of the codon starting at each position.
    codons = bases[:-2] * 25 + bases[1:-1] * 5 + bases[2:]
    is_stop = np.isin(codons, _codon_codes(stop_codons))
    is_start = np.isin(codons, _codon_codes(ORF_START_CODONS))
    for frame in range(3):
        stop_at = np.flatnonzero(is_stop[frame::3])
        start_at = np.flatnonzero(is_start[frame::3])
        if not len(start_at):
            continue
        previous_stop = np.concatenate(([-1], stop_at[:-1]))
        # First start after the previous stop; it belongs to this ORF if it comes before this stop.
        first = np.searchsorted(start_at, previous_stop, side="right")
        has_start = first < len(start_at)
        start_codon = start_at[np.minimum(first, len(start_at) - 1)]
        keep = has_start & (start_codon < stop_at) & ((stop_at - start_codon + 1) * 3 >= min_len)
        for start, stop in zip(start_codon[keep], stop_at[keep], strict=True):
            yield frame + 3 * int(start), frame + 3 * int(stop) + 2


def baseline_speed(finder: Callable[[Records], dict], fasta: Records) -> tuple[dict[str, list[Gene]], float]:
    """(genes, bp/s) of one baseline on a genome, FASTA parsing excluded."""
    records = _records(fasta)
    started = time.perf_counter()
    genes = finder(records)
    seconds = time.perf_counter() - started
    return genes, sum(len(sequence) for _, sequence in records) / seconds
