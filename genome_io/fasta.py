"""Streaming FASTA reading (Biopython's parser) with one-line errors naming the file and line."""

from __future__ import annotations

import re
from collections.abc import Iterator
from os import PathLike

from Bio.SeqIO.FastaIO import SimpleFastaParser

from core.errors import InputError

from .files import numbered_lines

# IUPAC nucleotide codes (U included), either case; soft-masking is lower case.
NOT_IUPAC = re.compile(r"[^ACGTUNRYSWKMBDHVacgtunryswkmbdhv]")
# DNA as every reader of it sees it (tokenizer, constraint tables, annotator, dataset builder, baselines):
# soft-masking upper-cased, RNA's U read as T, the other IUPAC codes as N (no reader tells R from Y).
_DNA_TEXT = str.maketrans("acgtnuU" + "rysw" + "kmbdhv" + "RYSW" + "KMBDHV", "ACGTNTT" + "N" * 20)


def normalise_dna(sequence: str) -> str:
    """Upper-case ACGTN of IUPAC nucleotide text (U -> T, ambiguity codes -> N); other characters stay."""
    return sequence.translate(_DNA_TEXT)


def read_fasta(path: str | PathLike) -> Iterator[tuple[str, str]]:
    """Yield (seqid, sequence) one record at a time; seqid is the first word of the header.

    The sequence keeps its case (soft-masking) and letters; readers of the DNA see `normalise_dna` of it.
    Raises InputError for a missing, empty or truncated file, text before the first '>' header, an empty
    header, a duplicate seqid or a character that is not an IUPAC nucleotide code (with its line).
    """
    header_lines: dict[str, int] = {}

    def lines() -> Iterator[str]:
        seen_header = False
        for number, line in numbered_lines(path):
            if line.startswith(">"):
                seen_header = True
                seqid = line[1:].split(maxsplit=1)[0] if line[1:].strip() else ""
                if not seqid:
                    raise InputError(path, number, "FASTA header without a sequence name")
                if seqid in header_lines:
                    raise InputError(
                        path, number, f"duplicate seqid {seqid!r} (first at line {header_lines[seqid]})"
                    )
                header_lines[seqid] = number
            elif not seen_header and line.strip():
                raise InputError(path, number, "not FASTA: expected a '>' header line before any sequence")
            yield line + "\n"

    count = 0
    for title, sequence in SimpleFastaParser(lines()):
        seqid = title.split(maxsplit=1)[0]
        bad = NOT_IUPAC.search(sequence)
        if bad:
            line, column = _locate(path, header_lines[seqid], bad.start())
            raise InputError(
                path, line, f"invalid character {bad.group()!r} in sequence {seqid!r} (column {column})"
            )
        count += 1
        yield seqid, sequence
    if count == 0:
        raise InputError(path, 1, "empty FASTA: no '>' record found")


def fasta_lengths(path: str | PathLike) -> dict[str, int]:
    """Length of every sequence, in file order (reads the file once, one sequence at a time)."""
    return {seqid: len(sequence) for seqid, sequence in read_fasta(path)}


def _locate(path: str | PathLike, header_line: int, offset: int) -> tuple[int, int]:
    """(line, 1-based column) of base `offset` of the record whose header is on `header_line`."""
    for number, line in numbered_lines(path):
        if number <= header_line:
            continue
        bases = line.replace(" ", "").rstrip()
        if offset < len(bases):
            return number, offset + 1
        offset -= len(bases)
    return header_line, 1
