"""The intron probe's data (`training.synthetic.spliced_gene_window`): random windows with one planted
multi-exon coding gene (1-4 canonical GT..AG introns of varied length, the frame carried across them, either
strand), checked as biology and through the codec.

The genes carry the signals of real ones (splice-site consensus, Kozak context, codon usage): with bare
GT..AG introns in random DNA another canonical splice site a few codons away almost always gives another valid
coding chain, about as likely as the planted one, and a first sizing of the probe (hidden 96, 2+2 layers, 1.5 kbp windows, 900
steps in 7 minutes on one thread) wrote 0 of 200 chains exactly. The probe itself is tests/test_intron_probe.py."""

from __future__ import annotations

import random
from itertools import pairwise

from Bio.Seq import Seq

from tokenization.codec import genes_to_text, text_to_genes
from training.synthetic import spliced_gene_window

WINDOW_BP = 1500


def spliced_cds(row: dict) -> str:
    [gene] = text_to_genes(row["target"]).genes
    dna = "".join(row["sequence"][a : b + 1] for a, b in gene.transcripts[0].cds_segments())
    return dna if gene.strand == "+" else str(Seq(dna).reverse_complement())


def test_planted_genes_are_spliced_coding_genes_on_both_strands():
    rng = random.Random(3)
    rows = [spliced_gene_window(rng, f"w{i}", WINDOW_BP) for i in range(300)]
    strands, intron_counts = set(), set()
    for row in rows:
        assert len(row["sequence"]) == WINDOW_BP
        [gene] = text_to_genes(row["target"]).genes
        assert genes_to_text([gene]) == row["target"]  # the codec round trip keeps the exon chain
        protein = str(Seq(spliced_cds(row)).translate(table=1))
        assert protein.startswith("M") and protein.index("*") == len(protein) - 1  # one stop, at the end
        segments = gene.transcripts[0].cds_segments()
        for (_, left_end), (right_start, _) in pairwise(segments):
            intron = row["sequence"][left_end + 1 : right_start]
            if gene.strand == "-":
                intron = str(Seq(intron).reverse_complement())
            assert intron[:2] == "GT" and intron[-2:] == "AG" and 40 <= len(intron) <= 150
        strands.add(gene.strand)
        intron_counts.add(len(segments) - 1)
    assert strands == {"+", "-"} and intron_counts == {1, 2, 3, 4}


def test_planted_genes_carry_the_signals_of_real_genes_unless_asked_not_to():
    rng = random.Random(4)
    for signals in (True, False):
        for i in range(100):
            row = spliced_gene_window(rng, f"w{i}", WINDOW_BP, signals=signals)
            [gene] = text_to_genes(row["target"]).genes
            sequence = row["sequence"]
            if gene.strand == "-":  # read the gene on its own strand
                sequence, gene = str(Seq(sequence).reverse_complement()), gene.mirror(WINDOW_BP)
            segments = gene.transcripts[0].cds_segments()
            introns = [sequence[a + 1 : b] for (_, a), (b, _) in pairwise(segments)]
            consensus = [x[:6] in ("GTAAGT", "GTGAGT") and set(x[-15:-3]) <= set("CT") for x in introns]
            assert all(consensus) if signals else not all(consensus)
            if signals:
                assert sequence[gene.start - 6 : gene.start] == "GCCACC"
