"""Baselines to score GFF-MoE against: Prodigal (prokaryotes), AUGUSTUS (eukaryotes) and the ORF floor.

All return genome-level genes (1-based, per seqid), stop codon included in the CDS. Prodigal and the ORF
floor give the NCBI prokaryote shape: one `DIRECT` transcript whose single exon is the CDS; AUGUSTUS
gives gene -> mRNA -> CDS chains (its GFF3 read by `genome_io.gff.read_gff`).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from os import PathLike
from pathlib import Path

import pyrodigal
from Bio.Data.CodonTable import unambiguous_dna_by_id

from core.errors import InputError
from core.features import Gene
from core.orfs import coding_gene, open_reading_frames

from .fasta import normalise_dna, read_fasta
from .gff import read_gff

Records = str | PathLike | Iterable[tuple[str, str]]

# Prodigal's own rule: below this much sequence, single-genome training is unreliable (and refused).
MIN_TRAINING_BP = 20_000
# The ORF floor per kingdom: (minimum ORF bp, start codons). Prokaryote genes are long single ORFs
# starting with ATG, GTG or TTG (~90% ATG; table 11's rare ATT/ATC/ATA/CTG are left out so the
# "longest start" does not run into upstream non-starts); eukaryote genes start with ATG, and introns
# cut them into shorter open stretches.
PROKARYOTE_ORF_FLOOR = (600, ("ATG", "GTG", "TTG"))
EUKARYOTE_ORF_FLOOR = (300, ("ATG",))


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


def orf_floor_genes(
    fasta: Records, taxon: str = "prokaryotes", min_len: int | None = None, translation_table: int = 11
) -> dict[str, list[Gene]]:
    """The trivial floor: every ORF of at least `min_len` bp on both strands with its longest start, each
    as a single-exon gene (`core.orfs.open_reading_frames`).

    `taxon` sets the start codons and the default `min_len`: `PROKARYOTE_ORF_FLOOR` for prokaryotes,
    `EUKARYOTE_ORF_FLOOR` for the other taxa; the stop codons are those of `translation_table`
    (Biopython's tables; 1 and 11 share their stops).
    """
    default_len, starts = PROKARYOTE_ORF_FLOOR if taxon == "prokaryotes" else EUKARYOTE_ORF_FLOOR
    min_len = default_len if min_len is None else min_len
    stops = unambiguous_dna_by_id[translation_table].stop_codons
    return {
        seqid: open_reading_frames(sequence, starts, stops, min_len) for seqid, sequence in _records(fasta)
    }


def augustus_genes(fasta: Records, species: str) -> dict[str, list[Gene]]:
    """AUGUSTUS's ab initio genes with the parameter set `species` (e.g. "saccharomyces"; the sets are
    the folders of AUGUSTUS's config/species) for a FASTA path or (seqid, sequence) records.

    Runs the `augustus` binary (Debian package `augustus`) once over all sequences and reads its GFF3
    with `read_gff`. Options are explicit, so that no parameter set's own default changes the output:
    `--stopCodonExcludedFromCDS=false` (schizosaccharomyces_pombe and candida_albicans exclude the stop,
    which no GFF3 reference does), `--softmasking=on` (lower case is read as repeat masking, where
    exons are discouraged: how AUGUSTUS reads a soft-masked assembly; upper-case a FASTA whose lower
    case means anything else, since an all-lower-case sequence gets no genes), `--UTR=off` (coding
    structure only). N runs go in as they are: AUGUSTUS calls no exon in them. A gene that reaches a
    sequence end runs off it (AUGUSTUS's default partial gene model) and is open on that side.
    Raises InputError when the binary is missing or fails (an unknown parameter set, for one).
    """
    binary = shutil.which("augustus")
    if binary is None:
        raise InputError("augustus", None, "not installed (Debian/Ubuntu: apt-get install augustus)")
    records = _records(fasta)
    lengths = {seqid: len(sequence) for seqid, sequence in records}
    genes: dict[str, list[Gene]] = {seqid: [] for seqid in lengths}
    with tempfile.TemporaryDirectory(prefix="augustus-") as folder:
        fasta_path, gff_path = Path(folder, "genome.fa"), Path(folder, "augustus.gff3")
        fasta_path.write_text("".join(f">{seqid}\n{sequence}\n" for seqid, sequence in records))
        options = ["--gff3=on", "--UTR=off", "--softmasking=on", "--stopCodonExcludedFromCDS=false"]
        with gff_path.open("w") as out:
            done = subprocess.run(
                [binary, f"--species={species}", *options, str(fasta_path)],
                stdout=out,
                stderr=subprocess.PIPE,
                text=True,
            )
        if done.returncode:
            said = [line.strip() for line in done.stderr.splitlines() if line.strip()]
            reason = said[-1] if said else f"exit status {done.returncode}"
            raise InputError("augustus", None, f"--species={species} failed: {reason}")
        if not any(line.strip() and not line.startswith("#") for line in gff_path.read_text().splitlines()):
            return genes  # no gene anywhere: read_gff would call the file empty
        result = read_gff(gff_path, lengths)
    if result.report.dropped:  # AUGUSTUS's own output: a drop would be a silent loss
        raise InputError("augustus", None, f"unreadable output: {result.report.summary()}")
    for seqid, found in result.genes_by_seqid.items():
        genes[seqid] = [
            replace(
                gene,
                transcripts=tuple(
                    replace(t, type="mRNA") for t in gene.transcripts
                ),  # it writes "transcript"
                open_left=gene.start == 1,
                open_right=gene.end == lengths[seqid],
            )
            for gene in found
        ]
    return genes


def baseline_speed(finder: Callable[[Records], dict], fasta: Records) -> tuple[dict[str, list[Gene]], float]:
    """(genes, bp/s) of one baseline on a genome, FASTA parsing excluded."""
    records = _records(fasta)
    started = time.perf_counter()
    genes = finder(records)
    seconds = time.perf_counter() - started
    return genes, sum(len(sequence) for _, sequence in records) / seconds
