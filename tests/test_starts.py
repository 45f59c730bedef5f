"""Start codons: the ORF's candidates and their features, the longest-start default, the fitted scorer."""

from __future__ import annotations

import random
from dataclasses import replace

import datasets
import numpy as np
import pytest
from Bio.Seq import reverse_complement

from annotation.constraints import GeneticCode
from annotation.starts import FEATURES, orf_starts, pick_start, start_weight_vector
from core.features import Gene, Transcript
from core.orfs import coding_gene
from tests.fixtures.genomes import random_dna
from tokenization.codec import genes_to_text, text_to_genes
from training.starts import fit_start_weights, start_examples

CODE = GeneticCode(11)
SENSE = [a + b + c for a in "ACGT" for b in "ACGT" for c in "ACGT" if a + b + c not in ("TAA", "TAG", "TGA")]


def minus_copy(gene: Gene, length: int) -> Gene:
    """`gene` as it lies on the reverse complement of a sequence of `length` bp."""
    return coding_gene(length - gene.end + 1, length - gene.start + 1, "-")


def test_without_weights_a_gene_starts_at_its_orfs_longest_start_on_either_strand():
    """The first start codon in frame after the previous stop (or N, or the sequence's end): GTG and TTG
    count in code 11, not in code 1; genes open at their 5' end or of several exons stay as they are."""
    upstream = (
        "TGA" + "GCC" * 4 + "GTG" + "GCC" * 300 + "TTG"
    )  # the GTG lies beyond the first 384 bp looked at
    dna = "AC" + upstream + "ATG" + "GCC" * 100 + "TAA" + "CCCC"
    gtg, atg = dna.index("GTG") + 1, dna.index("ATGGCC") + 1  # 1-based
    gene = coding_gene(atg, atg + 302, "+")
    assert pick_start(gene, dna, CODE) == coding_gene(gtg, atg + 302, "+")
    minus = minus_copy(gene, len(dna))
    assert pick_start(minus, reverse_complement(dna), CODE) == minus_copy(
        coding_gene(gtg, atg + 302, "+"), len(dna)
    )
    for codon, start in (("NNN", gtg), ("ATG", 3)):  # an N codon stops the walk; no stop: the first start
        assert pick_start(gene, dna[:2] + codon + dna[5:], CODE).start == start
    assert pick_start(gene, dna, GeneticCode(1)) == gene  # code 1: only ATG starts
    assert pick_start(replace(gene, open_left=True), dna, CODE).start == atg
    spliced = Gene(atg, atg + 302, "+", transcripts=(Transcript("mRNA", ((atg, atg + 99), (atg + 150, atg + 302)), (atg, atg + 302)),))  # fmt: skip
    assert pick_start(spliced, dna, CODE) == spliced


def sd_orf() -> tuple[str, int, int, int]:
    """An ORF whose first start is a bare GTG and whose second an ATG behind AGGAGG (8 bp spacer):
    (dna, GTG, ATG, stop end), 1-based."""
    rng = random.Random(1)
    body = (
        "".join(rng.choices(SENSE[:-1], k=60))
        .replace("ATG", "GCC")
        .replace("GTG", "GCC")
        .replace("TTG", "GCC")
    )
    spacer = "ACATACAC"
    dna = (
        "CC" + "TAA" + "CCCCAACCA" + "GTG" + "GCA" * 8 + "GAGGAGG" + spacer + "ATG" + body + "TAG" + "C" * 30
    )
    return dna, dna.index("GTG") + 1, dna.index("ATG") + 1, dna.index("TAG") + 3


def test_each_candidate_reads_its_codon_shine_dalgarno_rank_and_upstream_bases():
    dna, gtg, atg, stop = sd_orf()
    orf = orf_starts(coding_gene(atg, stop, "+"), dna, CODE)
    assert list(orf.five_prime) == [gtg, atg] and list(orf.lengths) == [stop - gtg + 1, stop - atg + 1]
    assert not orf.at_sequence_end
    named = [{FEATURES[i]: v for i, v in enumerate(row) if v} for row in orf.features]
    assert named[0]["codon GTG"] == named[1]["codon ATG"] == 1
    assert named[0]["shine-dalgarno 0"] == 1 and named[1]["shine-dalgarno 6"] == 1
    assert named[0]["rank 0"] == named[1]["rank 1"] == 1 and named[1]["log rank"] == pytest.approx(np.log(2))
    flank = dna[atg - 21 : atg - 1]
    assert [n for n in named[1] if n.startswith("base")] == [
        f"base {i - 20} {b}" for i, b in enumerate(flank)
    ]
    # The same ORF on the minus strand: the same features.
    minus = orf_starts(minus_copy(coding_gene(atg, stop, "+"), len(dna)), reverse_complement(dna), CODE)
    assert np.array_equal(minus.features, orf.features)
    assert list(minus.five_prime) == [len(dna) - gtg + 1, len(dna) - atg + 1]


def test_weights_move_a_start_to_the_candidate_they_favour_within_the_length_limit():
    dna, gtg, atg, stop = sd_orf()
    weights = start_weight_vector({"shine-dalgarno 6": 3.0})
    gene = coding_gene(gtg, stop, "+")
    assert pick_start(gene, dna, CODE, weights).start == atg
    minus = minus_copy(gene, len(dna))
    assert pick_start(minus, reverse_complement(dna), CODE, weights).end == len(dna) - atg + 1
    assert pick_start(gene, dna, CODE, weights, min_length=stop - atg + 2).start == gtg  # too short
    assert pick_start(gene, dna, CODE, start_weight_vector({})).start == gtg  # all zero: the longest
    with pytest.raises(ValueError, match="start_weights name features this code does not compute: codon XYZ"):
        start_weight_vector({"codon XYZ": 1.0})


def planted_window(rng: random.Random) -> dict:
    """A baked-window row: random DNA with one gene whose ORF has 3-5 ATG/GTG/TTG starts, the annotated one
    a random one of them behind AGGAGG (its upstream the only one with it), on either strand."""
    FILLER = ("ACC", "CAC", "CCA", "ACA")  # no start, no stop, no G
    starts = rng.randint(3, 5)
    pieces = ["CC", "TAA"]
    chosen = rng.randrange(starts)
    for k in range(starts):
        pieces.append("AGGAGGACATACACC" if k == chosen else "".join(rng.choices(FILLER, k=5)))
        pieces.append(rng.choice(("ATG", "GTG", "TTG")) + "GCC" * rng.randint(2, 12))
    pieces.append("".join(rng.choice(["GCC", "GCA", "CCA", "ACC"]) for _ in range(100)) + "TAA")
    orf = "".join(pieces)
    five = len("".join(pieces[: 3 + 2 * chosen]))  # 0-based
    lead, tail = random_dna(200, seed=rng.randrange(10**6)), random_dna(200, seed=rng.randrange(10**6))
    dna = lead + orf + tail
    gene = coding_gene(len(lead) + five, len(lead) + len(orf) - 1, "+")  # window genes are 0-based
    if rng.random() < 0.5:
        dna, gene = reverse_complement(dna), gene.mirror(len(dna))
    return {
        "sequence": dna,
        "target": genes_to_text([gene]),
        "taxon": "prokaryotes",
        "strand_augmented": False,
    }


def test_the_start_scorer_learns_a_planted_rule_from_baked_windows():
    """train.py's fit: examples from baked-window rows (only prokaryote ones, no reverse-complement copies),
    then the conditional logit; on new windows it finds the planted start that the longest rule misses."""
    rng = random.Random(0)
    rows = [planted_window(rng) for _ in range(300)]
    ignored = [dict(rows[0], taxon="unicellular"), dict(rows[1], strand_augmented=True)]
    examples = start_examples(datasets.Dataset.from_list(rows + ignored), progress=False)
    assert len(examples) == 300
    weights = start_weight_vector(fit_start_weights(examples))
    assert set(fit_start_weights(examples[:20])) == set(FEATURES)
    held_out = [planted_window(rng) for _ in range(100)]
    right = longest = 0
    for row in held_out:
        (gene,) = [g.shift(1) for g in text_to_genes(row["target"]).genes]
        moved = pick_start(gene, row["sequence"], CODE, weights)
        right += moved == gene
        longest += pick_start(gene, row["sequence"], CODE) == gene
    assert right >= 95 and longest < 50
