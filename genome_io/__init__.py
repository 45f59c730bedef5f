"""Genome input and output: FASTA and GFF3/GTF reading, GFF3 and bedGraph writing, baseline gene finders.

Every bad input raises `core.errors.InputError` ("PATH:LINE: message", one line); CLIs print it and exit 2.
Import from the modules (`genome_io.fasta`, `genome_io.gff`, ...): this package imports nothing itself.
"""
