"""Genome input and output: FASTA and GFF3/GTF reading, GFF3 writing, baseline gene finders.

Every bad input raises `InputError` ("PATH:LINE: message", one line); CLIs print it and exit 2.
"""

from .errors import InputError
from .fasta import fasta_lengths, read_fasta
from .gff import GffReadResult, GffReport, read_gff

__all__ = ["InputError", "GffReadResult", "GffReport", "fasta_lengths", "read_fasta", "read_gff"]
