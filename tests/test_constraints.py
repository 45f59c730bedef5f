"""The biology-constrained LogitsProcessor: grammar always respected, every biological rule enforced."""

from __future__ import annotations

import gc
import weakref
from dataclasses import replace

import numpy as np
import pytest
import torch
from Bio.Seq import Seq

from annotation.constraints import (
    BiologyConstrainedLogitsProcessor,
    GeneticCode,
    GrammarError,
    GrammarVocab,
    Purpose,
    Slot,
    Stage,
)
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
    return [f"<{gene_type}>", *NUMBERS.encode(start), *NUMBERS.encode(end), f"<{strand}>"]


def revcomp(dna: str) -> str:
    return str(Seq(dna).reverse_complement())


# An ORF at 10..21 (ATG GCT GCT TAA), then an in-frame TAG at 25..27; C-runs hold no start or stop.
ORF_DNA = "C" * 10 + "ATGGCTGCTTAAGCTTAG" + "C" * 12


def test_a_batchs_grammars_are_freed_with_its_processor_without_the_cyclic_gc():
    """A grammar that only the cyclic GC frees keeps its window's tables on the heap among the model's buffers
    until a collection: on a 20 Mbp contig that was 212 MiB of peak RSS (bench/annotate_memory.py)."""
    processor = BiologyConstrainedLogitsProcessor.for_windows(
        GRAMMAR_VOCAB, [ORF_DNA, random_dna(300, seed=1)], coding_genes=True, spliced=True
    )
    ids = [token_id(t) for t in ["<bos>", "[ATT]", *gene_head(10, 21), "<direct>"]]
    # the rules run, the states and caches fill
    processor(torch.tensor([ids, ids]), torch.zeros(2, len(VOCAB) + 64))
    grammars = [weakref.ref(g) for g in processor.grammars]
    gc.disable()
    try:
        del processor
        assert [g() for g in grammars] == [None, None]
    finally:
        gc.enable()


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
    assert "<ph1>" not in after_cds and "<ph2>" not in after_cds and "<mRNA>" in after_cds  # phase 0 only
    shifted = "A" + dna  # now the frame that ends in the stop starts one base in: phase 1
    after_cds = allowed_after(shifted, [*gene_head(0, 9), "<open_l>", "<direct>", "<cds_all>"])
    assert after_cds & {"<ph1>", "<ph2>", "<mRNA>"} == {"<ph1>"}


def test_genes_in_canonical_order_and_start_before_end():
    first_gene = [*gene_head(10, 21), "<direct>", "<cds_all>"]
    starts = allowed_after(ORF_DNA, [*first_gene, "<gene>", "<n0>"])
    assert "<n9>" not in starts and "<n10>" in starts
    ends = allowed_after(ORF_DNA, [*first_gene, "<gene>", *NUMBERS.encode(10), "<n0>"])
    assert "<n20>" not in ends and {"<n21>", "<n22>"} <= ends  # same start: end no earlier
    # the same span and type again: only on another strand (the same strand would repeat the gene)
    strands = allowed_after(ORF_DNA, [*first_gene, "<gene>", *NUMBERS.encode(10), *NUMBERS.encode(21)])
    assert strands == {"<->", "<.>"}
    strands = allowed_after(ORF_DNA, [*first_gene, "<ncRNA_gene>", *NUMBERS.encode(10), *NUMBERS.encode(21)])
    assert strands == {"<+>", "<->", "<.>"}
    assert "<n10>" not in allowed_after(ORF_DNA, ["<gene>", *NUMBERS.encode(10), "<n0>"])


def test_pointer_coordinates_name_bases_inside_dna_tokens():
    dna = random_dna(20, seed=3)
    offsets = [(0, 0), (0, 5), (5, 9), (9, 20), (0, 0)]
    assert allowed_after(dna, ["<gene>"], offsets=offsets) == {"<@1>", "<@2>", "<@3>"}
    assert allowed_after(dna, ["<gene>", "<@2>"], offsets=offsets) == {f"<o{k}>" for k in range(4)}
    scheme = PointerCoordinates(offsets, len(VOCAB))
    assert scheme.decode("<@2>", "<o3>") == 8


def test_an_impossible_grammar_state_raises():
    """A state no token sequence leads to is a bug: it raises instead of falling into another state's branch
    (a coordinate with an unknown purpose used to be taken silently for a CDS end)."""
    processor = BiologyConstrainedLogitsProcessor.for_windows(GRAMMAR_VOCAB, [ORF_DNA])
    grammar = processor.grammars[0]
    prefix = [token_id(t) for t in ["<bos>", "[ATT]", *gene_head(0, len(ORF_DNA) - 1), "<direct>", "<cds>"]]
    state = processor.state(0, prefix)
    assert (state.slot, state.purpose, state.transcript.stage) == (Slot.COORD, Purpose.CDS_START, Stage.HEAD)
    first = grammar.step(state, int(grammar.allowed(state)[0]))
    second = int(grammar.allowed(first)[0])
    grammar.step(first, second)  # the CDS start is written
    with pytest.raises(GrammarError, match="^impossible grammar state: no rule for coordinate None$"):
        grammar.step(replace(first, purpose=None), second)
    with pytest.raises(GrammarError, match="no rule for slot 'coord'"):
        grammar.allowed(replace(state, slot="coord"))
    in_body = processor.state(0, prefix[:-1])
    with pytest.raises(GrammarError, match="no rule for stage 'cds'"):
        grammar.allowed(replace(in_body, transcript=replace(in_body.transcript, stage="cds")))


# ---------------------------------------------------------------- random logits: always valid records


def check_biology(gene, dna: str, table: int) -> None:
    """Independent check (Biopython) of every rule the processor promises. Open edges sit at a sequence
    end: the window's, or (for stitched genes) the contig's or an N gap's."""
    n = len(dna)
    assert 0 <= gene.start < gene.end < n
    assert not gene.open_left or gene.start == 0 or dna[gene.start - 1] == "N"
    assert not gene.open_right or gene.end == n - 1 or dna[gene.end + 1] == "N"
    for t in gene.transcripts:
        assert gene.start <= t.start and t.end <= gene.end
        for (_, a), (b, _) in zip(t.exons, t.exons[1:], strict=False):
            intron = dna[a + 1 : b] if gene.strand == "+" else revcomp(dna[a + 1 : b])
            assert len(intron) >= 4 and (intron[:2], intron[-2:]) in SPLICE_SITES
        if t.cds is None or gene.type == "pseudogene":
            continue
        assert gene.strand in "+-"
        seq = "".join(dna[s : e + 1] for s, e in t.cds_segments())
        open5, open3 = gene.open_left and t.cds[0] == gene.start, gene.open_right and t.cds[1] == gene.end
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


def sample_constrained(dnas, table, steps, seed, structure_bias=2.0, also_favoured=(), **options):
    """Random logits through the processor (sampling), returning the token strings per window."""
    generator = torch.Generator().manual_seed(seed)
    processor = BiologyConstrainedLogitsProcessor.for_windows(
        GRAMMAR_VOCAB, dnas, code=GeneticCode(table), **options
    )
    ids = torch.full((len(dnas), 1), VOCAB["<bos>"])
    favoured = [VOCAB[t] for t in ("<cds_all>", "<cds>", "<introns>", "<mRNA>", "<open_l>", "<open_r>")]
    favoured += [VOCAB[t] for t in also_favoured]
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
    prefix = ["<bos>", "[ATT]", "<gene>", "<n0>"]
    ids = torch.tensor([[token_id(t) for t in prefix]] * 4)  # 2 windows x 2 beams
    out = processor(ids, torch.zeros(4, len(VOCAB)))
    legal = [{token_name(i) for i in np.flatnonzero(np.isfinite(row.numpy()))} for row in out]
    assert legal[0] == legal[1] and legal[2] == legal[3]
    assert "<n28>" in legal[0] and "<n29>" not in legal[0] and "<n38>" in legal[2]


# ---------------------------------------------------------------- coding-gene mode: gene spans are ORFs


def check_orf_span(gene, dna: str, table: int, min_length: int) -> None:
    """Independent check (Biopython) that a snapped gene's span is an ORF; open edges exempt."""
    n = len(dna)
    seq = dna[gene.start : gene.end + 1]
    open5, open3 = gene.open_left, gene.open_right
    if gene.strand == "-":
        seq, open5, open3 = revcomp(seq), open3, open5
    if not (open5 or open3 or gene.start == 0 or gene.end == n - 1):
        assert len(seq) >= min_length
    if not open5:
        assert seq[:3] in STARTS[table]
    frames = [0] if not open5 else [len(seq) % 3] if not open3 else [0, 1, 2]
    proteins = [str(Seq(seq[f:][: (len(seq) - f) // 3 * 3]).translate(table=table)) for f in frames]
    if open3:
        assert any("*" not in p for p in proteins)
    else:
        assert len(seq[frames[0] :]) % 3 == 0
        assert proteins[0].endswith("*") and "*" not in proteins[0][:-1]  # the FIRST in-frame stop


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coding_gene_mode_snaps_gene_spans_to_orfs(seed):
    dnas = [random_dna(900, seed=seed), revcomp(random_dna(700, seed=seed + 20))]
    tokens = sample_constrained(
        dnas, 11, 300, seed, also_favoured=["<gene>", "<+>", "<->"], coding_genes=True, min_coding_length=60
    )
    snapped = 0
    for dna, sample in zip(dnas, tokens, strict=True):
        result = decode(sample[: sample.index("<eos>") + 1] if "<eos>" in sample else sample, NUMBERS)
        assert len(result.errors) <= 1
        for gene in result.genes:
            check_biology(gene, dna, 11)
            if gene.type == "gene" and gene.strand in "+-":
                check_orf_span(gene, dna, 11, 60)
                assert gene.transcripts  # a coding gene has at least one transcript
                snapped += 1
            assert len(gene.transcripts) == len(set(gene.transcripts)) <= 16  # no repeats
    assert snapped >= 3


def allowed_coding(dna: str, tokens: list[str], min_coding_length: int = 9, offsets=None) -> set[str]:
    processor = BiologyConstrainedLogitsProcessor.for_windows(
        GRAMMAR_VOCAB,
        [dna],
        None if offsets is None else [offsets],
        coding_genes=True,
        min_coding_length=min_coding_length,
    )
    ids = [token_id(t) for t in ["<bos>", "[ATT]", *tokens]]
    return {token_name(int(i)) for i in processor.grammars[0].allowed(processor.state(0, ids))}


def test_coding_gene_mode_minimum_length_and_pointers():
    # ORFs: 10..21 (12 bp) and 30..62 (ATG + 9 codons + TAG, 33 bp); C-runs hold no start or stop.
    dna = "C" * 10 + "ATGGCTGCTTAA" + "C" * 8 + "ATG" + "GCT" * 9 + "TAG" + "C" * 10
    assert dna[30:33] == "ATG" and dna[60:63] == "TAG"
    # left coordinates of both strands: plus-strand start codons at 10 and 30 (and 0, a gene cut by the open
    # left edge), minus-strand stops (TTA) at 18 and 59 whose ORFs run off the open right edge
    starts = allowed_coding(dna, ["<gene>", "<n0>"], min_coding_length=9)
    assert starts == {"<n0>", "<n10>", "<n18>", "<n30>", "<n59>"}
    without_short = allowed_coding(dna, ["<gene>", "<n0>"], min_coding_length=20)
    assert without_short == starts - {"<n10>"}  # 10..21 is 12 bp
    assert allowed_coding(dna, ["<gene>", "<n0>", "<n30>", "<n0>"]) == {"<n62>"}
    # the DNA decides the strand: the span is an ORF on + only, and its mirror image on - only
    assert allowed_coding(dna, ["<gene>", "<n0>", "<n30>", "<n0>", "<n62>"]) == {"<+>"}
    mirrored = ["<gene>", *NUMBERS.encode(len(dna) - 63), *NUMBERS.encode(len(dna) - 31)]
    assert allowed_coding(revcomp(dna), mirrored) == {"<->"}
    # not snapped: other gene types, and the mode off
    assert "<n11>" in allowed_coding(dna, ["<ncRNA_gene>", "<n0>"])
    assert "<n11>" in allowed_after(dna, ["<gene>", "<n0>"])
    # pointers: only tokens holding a legal base, then only its legal offsets
    offsets = [(0, 0), (0, 12), (12, 31), (31, 50), (50, len(dna)), (0, 0)]
    assert allowed_coding(dna, ["<gene>"], 20, offsets) == {"<@1>", "<@2>", "<@4>"}
    assert allowed_coding(dna, ["<gene>", "<@2>"], 20, offsets) == {"<o6>", "<o18>"}
    assert allowed_coding(dna, ["<gene>", "<@2>", "<o18>"], 20, offsets) == {"<@4>"}


def test_coding_gene_at_the_window_edge_must_be_marked_open():
    dna = "GCTGCTTAA" + "C" * 20  # the left edge cuts the ORF: no start codon
    head = ["<gene>", *NUMBERS.encode(0), *NUMBERS.encode(8), "<+>"]
    assert allowed_coding(dna, head) == {"<open_l>"}
    assert "<cds_all>" in allowed_coding(dna, [*head, "<open_l>", "<direct>"])


def test_repeated_transcripts_are_banned():
    gene = [*gene_head(10, 21), "<mRNA>", "<cds_all>"]
    assert "<mRNA>" in allowed_after(ORF_DNA, gene)
    assert "<cds_all>" not in allowed_after(ORF_DNA, [*gene, "<mRNA>"])  # only a repeat follows it
    no_cds = [*gene, "<mRNA>", "<tRNA>"]
    assert "<eos>" in allowed_after(ORF_DNA, no_cds)
    # <mRNA> alone and with the whole CDS are taken: a third <mRNA> needs its own <span>
    third = allowed_after(ORF_DNA, [*gene, "<mRNA>", "<mRNA>"])
    assert "<eos>" not in third and "<cds_all>" not in third and "<span>" in third
    # a 2 bp gene has one possible <mRNA> transcript: no second one
    tiny = allowed_after(ORF_DNA, [*gene_head(10, 11), "<mRNA>"])
    assert "<mRNA>" not in tiny and "<tRNA>" in tiny


def test_one_direct_transcript_per_gene():
    """Two <direct> chains would hang two CDS on one GFF3 parent, which reads back as one broken chain."""
    direct = [*gene_head(10, 21), "<direct>", "<cds_all>"]
    assert "<direct>" in allowed_after(ORF_DNA, gene_head(10, 21))
    after = allowed_after(ORF_DNA, direct)
    assert "<direct>" not in after and {"<mRNA>", "<eos>"} <= after


def greedy(dna: str, wanted: list, coding_genes: bool = True) -> list[str]:
    """Greedy decoding of a 'model' whose logits peak at each wanted token (coordinates: near a base)."""
    processor = BiologyConstrainedLogitsProcessor.for_windows(
        GRAMMAR_VOCAB, [dna], coding_genes=coding_genes, min_coding_length=30
    )
    ids = torch.tensor([[VOCAB["<bos>"]]])
    for want in ["[ATT]", *wanted, "<eos>"]:
        scores = torch.zeros(1, len(VOCAB))
        if isinstance(want, int):  # a base position: logits fall off with the distance from it
            for k in range(len(dna)):
                scores[0, VOCAB[f"<n{k}>"]] = -abs(k - want)
        else:
            scores[0, VOCAB[want]] = 10.0
        next_id = processor(ids, scores).argmax(-1, keepdim=True)
        ids = torch.cat([ids, next_id], 1)
    return [token_name(i) for i in ids[0].tolist()]


@pytest.mark.parametrize("strand", ["+", "-"])
def test_a_slightly_wrong_gene_is_snapped_to_the_true_orf(strand):
    orf = "ATG" + "GCT" * 15 + "TAA"  # 51 bp at 20..70
    dna = "C" * 20 + orf + "C" * 20
    start, end = 20, 70
    if strand == "-":
        dna = revcomp(dna)
        start, end = len(dna) - 1 - end, len(dna) - 1 - start
    wanted = ["<gene>", "<n0>", start + 2, "<n0>", end + 4, f"<{strand}>", "<direct>", "<cds_all>"]
    genes = decode(greedy(dna, wanted), NUMBERS).genes
    assert [(g.start, g.end, g.strand) for g in genes] == [(start, end, strand)]
    assert genes[0].transcripts[0].cds == (start, end)
    check_orf_span(genes[0], dna, 11, 30)
    free = decode(greedy(dna, wanted, coding_genes=False), NUMBERS).genes  # unsnapped: the wrong span
    assert [(g.start, g.end) for g in free] == [(start + 2, end + 4)] and not free[0].transcripts[0].cds


def track_log_probs(length: int, plus_gene: tuple[int, int]) -> np.ndarray:
    """Track head log-probabilities [length, 26] that call one + strand gene (start..end), all else intergenic."""
    from tokenization.track import gene_track

    start, end = plus_gene
    labels = gene_track([coding_gene(start, end)], length)
    probs = np.full((length, 26), 0.01)
    for column, first in enumerate((0, 6, 13, 19)):
        probs[np.arange(length), first + labels[:, column]] = 0.9
    return np.log(probs)


def coding_gene(start: int, end: int):
    from core.features import DIRECT, Gene, Transcript

    return Gene(start, end, "+", transcripts=(Transcript(DIRECT, ((start, end),), (start, end)),))


def test_the_track_moves_a_start_codon_choice_the_decoder_gets_wrong():
    # One stop, two in-frame start codons: ATG at 10 (the gene) and ATG at 31 (inside it).
    dna = "C" * 10 + "ATG" + "GCT" * 6 + "ATG" + "GCT" * 8 + "TAA" + "C" * 10
    start, inner, end = 10, 31, 10 + 3 + 18 + 3 + 24 + 3 - 1
    ids = [token_id(t) for t in ["<bos>", "[ATT]", "<gene>", "<n0>"]]
    scores = torch.zeros(1, len(VOCAB))
    scores[0, VOCAB[f"<n{inner}>"]] = 1.0  # the decoder prefers the inner start
    picks = {}
    for weight in (0.0, 1.0):
        processor = BiologyConstrainedLogitsProcessor.for_windows(
            GRAMMAR_VOCAB, [dna], None, GeneticCode(11), coding_genes=True, min_coding_length=30,
            track=[track_log_probs(len(dna), (start, end))], track_weight=weight,
        )  # fmt: skip
        allowed = processor.grammars[0].allowed(processor.state(0, ids))
        assert {VOCAB[f"<n{start}>"], VOCAB[f"<n{inner}>"]} <= set(allowed.tolist())
        picks[weight] = token_name(int(processor(torch.tensor([ids]), scores.clone()).argmax()))
    assert picks == {0.0: f"<n{inner}>", 1.0: f"<n{start}>"}


# ---------------------------------------------------------------- spliced coding-gene mode (eukaryotes)

# ATG GCT GCT GCT GCT GCT G | GT C*12 AG | CT GCT GCT GCT GCT GC | GT C*14 AG | T GCT GCT GCT TAA: a coding
# chain of three exons whose codons the introns split; C-runs hold no start, stop or splice site.
EXONS = ("ATG" + "GCT" * 5 + "G", "CT" + "GCT" * 4 + "GC", "T" + "GCT" * 3 + "TAA")
INTRONS = ("GT" + "C" * 12 + "AG", "GT" + "C" * 14 + "AG")
THREE_EXON_DNA = "C" * 20 + EXONS[0] + INTRONS[0] + EXONS[1] + INTRONS[1] + EXONS[2] + "C" * 20


def three_exon_gene(strand: str) -> tuple[str, list[tuple[int, int]]]:
    """The window and the gene's exons (window coordinates, left to right) on `strand`."""
    exons, at = [], 20
    for exon, intron in zip(EXONS, [*INTRONS, ""], strict=True):
        exons.append((at, at + len(exon) - 1))
        at += len(exon) + len(intron)
    if strand == "+":
        return THREE_EXON_DNA, exons
    n = len(THREE_EXON_DNA)
    return revcomp(THREE_EXON_DNA), [(n - 1 - e, n - 1 - s) for s, e in reversed(exons)]


def decode_near(dna: str, wanted: list, **options) -> list:
    """Greedy decoding through the processor of a 'model' whose logits peak at each wanted token; a
    coordinate (an int) is wanted as its two number tokens, the second falling off with the distance."""
    processor = BiologyConstrainedLogitsProcessor.for_windows(
        GRAMMAR_VOCAB, [dna], code=GeneticCode(1), min_coding_length=30, **options
    )
    steps = []
    for want in ["[ATT]", *wanted, "<eos>"]:
        steps += ["<n0>", want] if isinstance(want, int) else [want]
    ids = torch.tensor([[VOCAB["<bos>"]]])
    for want in steps:
        scores = torch.zeros(1, len(VOCAB))
        if isinstance(want, int):
            for k in range(len(dna)):
                scores[0, VOCAB[f"<n{k}>"]] = -abs(k - want)
        else:
            scores[0, VOCAB[want]] = 10.0
        ids = torch.cat([ids, processor(ids, scores).argmax(-1, keepdim=True)], 1)
    return decode([token_name(i) for i in ids[0].tolist()], NUMBERS).genes


@pytest.mark.parametrize("strand", ["+", "-"])
def test_spliced_coding_gene_mode_snaps_a_slightly_wrong_chain_to_the_true_one(strand):
    dna, exons = three_exon_gene(strand)
    (s, a1), (b1, a2), (b2, e) = exons
    # every coordinate a few bases off the truth, the strand token not the right one
    wrong = "-" if strand == "+" else "+"
    wanted = ["<gene>", s + 2, e - 3, f"<{wrong}>", "<mRNA>", "<introns>", a1 + 2, b1 - 2, a2 - 1, b2 + 3]
    wanted.append("<cds_all>")
    [gene] = decode_near(dna, wanted, coding_genes=True, spliced=True)
    assert (gene.start, gene.end, gene.strand) == (s, e, strand)
    [transcript] = gene.transcripts
    assert transcript.exons == tuple(exons) and transcript.cds == (s, e)
    check_biology(gene, dna, 1)
    # without the mode the same 'model' writes a chain that is no CDS
    [free] = decode_near(dna, wanted)
    assert free.transcripts[0].exons != tuple(exons) and free.transcripts[0].cds is None


def test_spliced_coding_gene_ends_are_codons_a_chain_reaches():
    dna, [(s, a1), (b1, a2), (b2, e)] = three_exon_gene("+")
    processor = BiologyConstrainedLogitsProcessor.for_windows(
        GRAMMAR_VOCAB, [dna], code=GeneticCode(1), coding_genes=True, min_coding_length=30, spliced=True
    )
    grammar = processor.grammars[0]

    def allowed(tokens):
        ids = [token_id(t) for t in ["<bos>", "[ATT]", *tokens]]
        return {token_name(int(i)) for i in grammar.allowed(processor.state(0, ids))}

    # left ends: the ATG (+), the TTA that the - strand reads as a stop codon, and the window's first base
    n, minus_stop = len(dna), b2 + 9
    assert dna[s : s + 3] == "ATG" and dna[minus_stop : minus_stop + 3] == "TTA"
    assert allowed(["<gene>", "<n0>"]) == {"<n0>", f"<n{s}>", f"<n{minus_stop}>"}
    # right ends: the stop codon's last base, or the window's last one (a chain running off it)
    assert allowed(["<gene>", "<n0>", f"<n{s}>", "<n0>"]) == {f"<n{e}>", f"<n{n - 1}>"}
    assert allowed(["<gene>", "<n0>", f"<n{s}>", "<n0>", f"<n{e}>"]) == {"<+>"}
    head = ["<gene>", "<n0>", f"<n{s}>", "<n0>", f"<n{e}>", "<+>", "<mRNA>"]
    # the unspliced span is no ORF: the transcript must be spliced, and no other way out is left
    assert allowed(head) == {"<introns>"}
    first_exon_ends = allowed([*head, "<introns>", "<n0>"])
    assert f"<n{a1}>" in first_exon_ends
    chain = [*head, "<introns>", "<n0>", f"<n{a1}>", "<n0>", f"<n{b1}>", "<n0>", f"<n{a2}>", "<n0>"]
    assert allowed(chain) == {f"<n{b2}>"}  # the only acceptor left before the stop
    assert allowed([*chain, f"<n{b2}>"]) == {"<cds_all>"}


def test_spliced_coding_gene_mode_writes_only_whole_cds_chains():
    closed = spliced = 0
    for seed in range(4):
        dnas = [random_dna(900, seed=seed), revcomp(random_dna(700, seed=seed + 20))]
        tokens = sample_constrained(
            dnas, 1, 300, seed, also_favoured=["<gene>", "<+>", "<->"], coding_genes=True,
            min_coding_length=60, spliced=True,
        )  # fmt: skip
        for dna, sample in zip(dnas, tokens, strict=True):
            result = decode(sample[: sample.index("<eos>") + 1] if "<eos>" in sample else sample, NUMBERS)
            assert len(result.errors) <= 1
            for gene in result.genes:
                check_biology(gene, dna, 1)
                if gene.type != "gene" or gene.open_left or gene.open_right:
                    continue
                # a whole coding gene: every transcript is its CDS chain, start codon to stop codon
                assert gene.transcripts and all(t.cds == (gene.start, gene.end) for t in gene.transcripts)
                closed += 1
                spliced += any(len(t.exons) > 1 for t in gene.transcripts)
    assert closed >= 4 and spliced >= 2


def chain_ends_by_brute_force(dna: str, strand: str, start: int) -> set[int]:
    """Right ends of every coding chain from `start` on `strand`, walked base by base and exon by exon: codons
    counted from `start`, read left to right (reverse-complemented on -), a start (+) or stop (-) codon first, a
    stop (+) or start (-) codon last, no stop codon inside one exon, canonical introns of >= 4 bp. A codon an
    intron splits is not looked at (nor is it by `SplicedChains`: the grammar checks it as it is written)."""
    stops, starts = {"TAA", "TAG", "TGA"}, {"ATG"}

    def codon(q):
        triple = dna[q : q + 3]
        return triple if strand == "+" else revcomp(triple)

    first, last = (starts, stops) if strand == "+" else (stops, starts)
    sites = [(d, a) if strand == "+" else (revcomp(a), revcomp(d)) for d, a in SPLICE_SITES]
    if codon(start) not in first:
        return set()
    ends, seen = set(), set()
    todo = [(start, start % 3, start + 1)]  # exon start, the frame its codons begin in, first codon checked
    while todo:
        b, frame, checked = todo.pop()
        if (b, frame) in seen:
            continue
        seen.add((b, frame))
        for p in range(b, len(dna)):  # the exon b..p
            q = p - 2  # the codon ending at p
            if q >= b and q % 3 == frame and codon(q) in last:
                ends.add(p)
            if q >= checked and q % 3 == frame and codon(q) in stops:
                break
            for left, right in sites:
                if dna[p + 1 : p + 3] == left:
                    for b2 in range(p + 5, len(dna)):
                        if dna[b2 - 2 : b2] == right:
                            todo.append((b2, (frame + b2 - p - 1) % 3, b2))
    return ends


@pytest.mark.parametrize("strand", ["+", "-"])
def test_spliced_chains_reach_what_a_walk_over_every_chain_reaches(strand):
    from annotation.constraints import SplicedChains, WindowTables

    reached = 0
    for seed in (11, 12, 13):
        dna = random_dna(300, seed=seed)
        chains = SplicedChains(WindowTables(dna, GeneticCode(1)), strand)
        for start in np.flatnonzero(chains.first).tolist():
            found = set(np.flatnonzero(chains.ends(start)).tolist()) - {len(dna) - 1}  # less the cut chains
            assert found == chain_ends_by_brute_force(dna, strand, start) - {len(dna) - 1}
            reached += len(found)
    assert reached >= 10
