"""The columns of every example, and the names the card and the baker share."""

from __future__ import annotations

import datasets

SPLITS = ("train", "validation", "test")
LABEL_SOURCES = {
    "gff": "reference annotation (GFF3/GTF)",
    "prodigal": "Prodigal (pyrodigal) predictions: silver labels, not a curated annotation",
    "augustus": "AUGUSTUS predictions (parameter set {augustus_species}): silver labels, not a curated annotation",
}

FEATURES = datasets.Features(
    {
        "species": datasets.Value("string"),
        "taxon": datasets.Value("string"),
        "seqid": datasets.Value("string"),
        "start": datasets.Value("int64"),  # absolute, 1-based inclusive
        "end": datasets.Value("int64"),
        "strand_augmented": datasets.Value("bool"),  # True: the reverse complement of [start, end]
        "sequence": datasets.Value("large_string"),  # upper-case DNA
        "target": datasets.Value("large_string"),  # tokenization.codec.genes_to_text of the window's genes
        "n_genes": datasets.Value("int32"),
        "n_partial": datasets.Value("int32"),  # genes cut by a window edge (open_left / open_right)
        "hints": datasets.Value("string"),  # codec text of a random subset of the genes ("" without hints)
    }
)
