"""The biology-constrained LogitsProcessor: grammar always respected, every biological rule enforced."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from Bio.Seq import Seq

from annotation.constraints import BiologyConstrainedLogitsProcessor, GeneticCode, GrammarVocab
from tests.fixtures.genomes import random_dna
from tokenization.codec import codec_vocabulary, decode
from tokenization.coordinates import NumberCoordinates, PointerCoordinates, pointer_token

VOCAB = {token: i for i, token in enumerate(codec_vocabulary())}
NAMES = {i: token for token, i in VOCAB.items()}
GRAMMAR_VOCAB = GrammarVocab(VOCAB, len(VOCAB))
NUMBERS = NumberCoordinates()
STARTS = {11: ("ATG", "GTG", "TTG"), 1: ("ATG",)}
SPLICE_SITES = {("GT", "AG"), ("GC", "AG"), ("AT", "AC")}


def token_name(i: int) -> str:
    return NAMES[i] if i < len(VOCAB) else pointer_token(i - len(VOCAB))


def token_id(token: str) -> int:
    return VOCAB[token] if token in VOCAB else len(VOCAB) + int(token[2:-1])


def allowed_after(dna: str, tokens: list[str], table: int = 11, offsets=None) -> set[str]:
    """Token strings the processor allows after `<bos> [ATT] tokens`."""
    processor = BiologyConstrainedLogitsProcessor.for_windows(
        GRAMMAR_VOCAB, [dna], None if offsets is None else [offsets], GeneticCode(table)
    )
    ids = [token_id(t) for t in ["<bos>", "[ATT]", *tokens]]
    allowed = processor.grammars[0].allowed(processor.state(0, ids))
    return {token_name(int(i)) for i in allowed}


def gene_head(start: int, end: int, strand: str = "+", gene_type: str = "gene") -> list[str]:
    return [f"<{gene_type}>", f"<{strand}>", *NUMBERS.encode(start), *NUMBERS.encode(end)]


def revcomp(dna: str) -> str:
    return str(Seq(dna).reverse_complement())


# An ORF at 10..21 (ATG GCT GCT TAA), then an in-frame TAG at 25..27; C-runs hold no start or stop.
ORF_DNA = "C" * 10 + "ATGGCTGCTTAAGCTTAG" + "C" * 12


@pytest.mark.parametrize("strand", ["+", "-"])
@pytest.mark.parametrize(
    ("start", "end", "coding"),
    [
        (10, 21, True),  # start codon .. first in-frame stop
        (10, 27, False),  # ends at a stop after an internal in-frame stop
        (10, 22, False),  # not a multiple of three, no stop at the end
        (11, 21, False),  # no start codon
    ],
)
def test_whole_gene_cds_needs_start_first_stop_and_frame(strand, start, end, coding):
    dna = ORF_DNA if strand == "+" else revcomp(ORF_DNA)
    if strand == "-":  # the same ORF, mirrored
        start, end = len(dna) - 1 - end, len(dna) - 1 - start
    allowed = allowed_after(dna, [*gene_head(start, end, strand), "<direct>"])
    assert ("<cds_all>" in allowed) == coding
    assert "<gene>" in allowed and "<eos>" in allowed  # a non-coding transcript is always possible


def test_cds_end_is_the_first_in_frame_stop():
    tokens = [*gene_head(0, len(ORF_DNA) - 1), "<direct>", "<cds>", *NUMBERS.encode(10), "<n0>"]
    assert allowed_after(ORF_DNA, tokens) == {"<n21>"}
    starts = allowed_after(ORF_DNA, [*gene_head(0, len(ORF_DNA) - 1), "<direct>", "<cds>", "<n0>"])
    assert starts == {"<n10>"}  # the only start codon with an in-frame stop after it


def test_strand_dot_has_no_cds_and_genetic_code_changes_starts():
    assert "<cds_all>" not in allowed_after(ORF_DNA, [*gene_head(10, 21, "."), "<direct>"])
    gtg = ORF_DNA.replace("ATGGCT", "GTGGCT")
    assert "<cds_all>" in allowed_after(gtg, [*gene_head(10, 21), "<direct>"], table=11)
    assert "<cds_all>" not in allowed_after(gtg, [*gene_head(10, 21), "<direct>"], table=1)


def test_pseudogene_cds_is_exempt_from_codon_rules():
    assert "<cds_all>" in allowed_after(ORF_DNA, [*gene_head(11, 22, "+", "pseudogene"), "<direct>"])


# exon 10..14 (ATGGC), intron 15..28 (GT C*10 AG), exon 29..35 (TGCTTAA): spliced ATG GCT GCT TAA.
SPLICED_DNA = "C" * 10 + "ATGGC" + "GT" + "C" * 10 + "AG" + "TGCTTAA" + "C" * 10


@pytest.mark.parametrize("strand", ["+", "-"])
def test_introns_need_canonical_splice_sites_and_carry_the_frame(strand):
    dna = SPLICED_DNA if strand == "+" else revcomp(SPLICED_DNA)
    n = len(dna)

    def mirror(x):
        return x if strand == "+" else n - 1 - x

    lo, hi = sorted((mirror(10), mirror(35)))
    head = [*gene_head(lo, hi, strand), "<mRNA>", "<introns>", "<n0>"]
    exon_end = mirror(14) if strand == "+" else mirror(29)
    next_start = mirror(29) if strand == "+" else mirror(14)
    assert f"<n{exon_end}>" in allowed_after(dna, head, table=1)
    assert f"<n{exon_end - 1}>" not in allowed_after(dna, head, table=1)
    assert f"<n{next_start}>" in allowed_after(dna, [*head, f"<n{exon_end}>", "<n0>"], table=1)
    chain = [*head, f"<n{exon_end}>", "<n0>", f"<n{next_start}>"]
    assert "<cds_all>" in allowed_after(dna, chain, table=1)
    broken = SPLICED_DNA.replace("TGCTTAA", "GCTTAAC")  # same splice sites, frame broken at the junction
    broken = broken if strand == "+" else revcomp(broken)
    assert "<cds_all>" not in allowed_after(broken, chain, table=1)
    no_acceptor = SPLICED_DNA.replace("CAGTGC", "CAATGC")  # no AG (or AC) left for the GT donor
    no_acceptor = no_acceptor if strand == "+" else revcomp(no_acceptor)
    assert f"<n{exon_end}>" not in allowed_after(no_acceptor, head, table=1)


def test_open_edges_only_at_the_window_edge_and_exempt_the_cut_codons():
    dna = "GCTGCTTAA" + "C" * 20  # a CDS cut by the left window edge: no start codon, stop at 6..8
    assert "<open_l>" in allowed_after(dna, gene_head(0, 8))
    assert "<open_l>" not in allowed_after(dna, gene_head(1, 8))
    assert "<open_r>" not in allowed_after(dna, gene_head(0, 8))
    assert "<cds_all>" not in allowed_after(dna, [*gene_head(0, 8), "<direct>"])  # complete: needs a start
    after_cds = allowed_after(dna, [*gene_head(0, 8), "<open_l>", "<direct>", "<cds_all>"])
    assert "<ph1>" not in after_cds and "<ph2>" not in after_cds and "<direct>" in after_cds  # phase 0 only
    shifted = "A" + dna  # now the frame that ends in the stop starts one base in: phase 1
    after_cds = allowed_after(shifted, [*gene_head(0, 9), "<open_l>", "<direct>", "<cds_all>"])
    assert after_cds & {"<ph1>", "<ph2>", "<direct>"} == {"<ph1>"}


def test_genes_in_canonical_order_and_start_before_end():
    first_gene = [*gene_head(10, 21), "<direct>", "<cds_all>"]
    starts = allowed_after(ORF_DNA, [*first_gene, "<gene>", "<+>", "<n0>"])
    assert "<n9>" not in starts and "<n10>" in starts
    ends = allowed_after(ORF_DNA, [*first_gene, "<gene>", "<+>", *NUMBERS.encode(10), "<n0>"])
    assert "<n20>" not in ends and "<n21>" in ends  # same start: end not before the previous end
    assert "<n10>" not in allowed_after(ORF_DNA, ["<gene>", "<+>", *NUMBERS.encode(10), "<n0>"])


def test_pointer_coordinates_name_bases_inside_dna_tokens():
    dna = random_dna(20, seed=3)
    offsets = [(0, 0), (0, 5), (5, 9), (9, 20), (0, 0)]
    assert allowed_after(dna, ["<gene>", "<+>"], offsets=offsets) == {"<@1>", "<@2>", "<@3>"}
    assert allowed_after(dna, ["<gene>", "<+>", "<@2>"], offsets=offsets) == {f"<o{k}>" for k in range(4)}
    scheme = PointerCoordinates(offsets, len(VOCAB))
    assert scheme.decode("<@2>", "<o3>") == 8


# ---------------------------------------------------------------- random logits: always valid records


def check_biology(gene, dna: str, table: int) -> None:
    """Independent check (Biopython) of every rule the processor promises."""
    n = len(dna)
    assert 0 <= gene.start < gene.end < n
    assert not gene.open_left or gene.start == 0
    assert not gene.open_right or gene.end == n - 1
    for t in gene.transcripts:
        assert gene.start <= t.start and t.end <= gene.end
        for (_, a), (b, _) in zip(t.exons, t.exons[1:], strict=False):
            intron = dna[a + 1 : b] if gene.strand == "+" else revcomp(dna[a + 1 : b])
            assert len(intron) >= 4 and (intron[:2], intron[-2:]) in SPLICE_SITES
        if t.cds is None or gene.type == "pseudogene":
            continue
        assert gene.strand in "+-"
        seq = "".join(dna[s : e + 1] for s, e in t.cds_segments())
        open5, open3 = gene.open_left and t.cds[0] == 0, gene.open_right and t.cds[1] == n - 1
        if gene.strand == "-":
            seq, open5, open3 = revcomp(seq), open3, open5
        if not open5:
            assert t.phase == 0 and seq[:3] in STARTS[table]
        coding = seq[t.phase :]
        protein = str(Seq(coding[: len(coding) // 3 * 3]).translate(table=table))
        if open3:
            assert "*" not in protein
        else:
            assert len(coding) % 3 == 0 and protein.endswith("*") and "*" not in protein[:-1]


def sample_constrained(dnas, table, steps, seed, structure_bias=2.0):
    """Random logits through the processor (sampling), returning the token strings per window."""
    generator = torch.Generator().manual_seed(seed)
    processor = BiologyConstrainedLogitsProcessor.for_windows(GRAMMAR_VOCAB, dnas, code=GeneticCode(table))
    ids = torch.full((len(dnas), 1), VOCAB["<bos>"])
    favoured = [VOCAB[t] for t in ("<cds_all>", "<cds>", "<introns>", "<mRNA>", "<open_l>", "<open_r>")]
    for _ in range(steps):
        scores = torch.randn(len(dnas), len(VOCAB), generator=generator) * 2
        scores[:, favoured] += structure_bias
        scores[:, VOCAB["<eos>"]] -= 4
        probs = processor(ids, scores).softmax(-1)
        ids = torch.cat([ids, torch.multinomial(probs, 1, generator=generator)], 1)
    return [[token_name(i) for i in row] for row in ids.tolist()]


@pytest.mark.parametrize(("table", "seed"), [(11, 0), (11, 1), (1, 2), (1, 3)])
def test_random_logits_always_decode_to_valid_genes(table, seed):
    dnas = [random_dna(600, seed=seed), "ATG" + random_dna(400, seed=seed + 10) + "TAA"]
    checked = 0
    for dna, tokens in zip(dnas, sample_constrained(dnas, table, steps=250, seed=seed), strict=True):
        if "<eos>" in tokens:
            tokens = tokens[: tokens.index("<eos>") + 1]
        result = decode(tokens, NumberCoordinates(len(dna)))
        # Only the record cut by the step budget may be incomplete.
        assert all("sequence ends inside a record" in e for e in result.errors), result.errors
        assert len(result.errors) <= 1
        for gene in result.genes:
            check_biology(gene, dna, table)
            checked += sum(t.cds is not None for t in gene.transcripts)
    assert checked > 0  # the test exercised coding spans


def test_incremental_state_equals_full_parse():
    dna = random_dna(500, seed=5)
    tokens = sample_constrained([dna], 1, steps=120, seed=7)[0]
    processor = BiologyConstrainedLogitsProcessor.for_windows(GRAMMAR_VOCAB, [dna], code=GeneticCode(1))
    ids = [token_id(t) for t in tokens]
    for n in range(1, len(ids) + 1):
        scores = torch.zeros(1, len(VOCAB))
        masked = processor(torch.tensor([ids[:n]]), scores)  # advances from the stored parent state
        fresh = BiologyConstrainedLogitsProcessor.for_windows(GRAMMAR_VOCAB, [dna], code=GeneticCode(1))
        assert torch.equal(masked, fresh(torch.tensor([ids[:n]]), scores))


def test_beam_rows_are_grouped_by_window():
    short, long = "C" * 30, ORF_DNA
    processor = BiologyConstrainedLogitsProcessor.for_windows(GRAMMAR_VOCAB, [short, long])
    prefix = ["<bos>", "[ATT]", "<gene>", "<+>", "<n0>"]
    ids = torch.tensor([[token_id(t) for t in prefix]] * 4)  # 2 windows x 2 beams
    out = processor(ids, torch.zeros(4, len(VOCAB)))
    legal = [{token_name(i) for i in np.flatnonzero(np.isfinite(row.numpy()))} for row in out]
    assert legal[0] == legal[1] and legal[2] == legal[3]
    assert "<n28>" in legal[0] and "<n29>" not in legal[0] and "<n38>" in legal[2]
