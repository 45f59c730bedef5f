"""The GFF target codec and coordinate schemes: round trips, totality of decoding, clear errors."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from core.features import DIRECT, Gene, Transcript
from tests.fixtures.genomes import GENOME_NAMES, shared_genome
from tokenization.codec import (
    EOS,
    CodecError,
    codec_vocabulary,
    decode,
    encode,
    gene_problems,
    genes_to_text,
    normalise,
    target_tokens,
    text_to_genes,
    type_token,
)
from tokenization.coordinates import (
    MAX_OFFSET,
    CoordinateError,
    NumberCoordinates,
    PointerCoordinates,
    pointer_token,
)

GENE_TYPES = ["gene", "pseudogene", "ncRNA_gene"]
TX_TYPES = [DIRECT, "mRNA", "tRNA", "lnc_RNA", "pseudogenic_transcript"]


# ---------------------------------------------------------------- synthetic genes


@st.composite
def transcripts(draw, lo: int, hi: int) -> Transcript:
    points = sorted(draw(st.lists(st.integers(lo, hi), min_size=2, max_size=10)))
    if draw(st.booleans()):  # a plain chain
        exons = tuple(zip(points[0::2], points[1::2], strict=False))
    else:  # possibly overlapping pieces (ribosomal slippage)
        pairs = zip(points[0::2], reversed(points[1::2]), strict=False)
        exons = tuple(sorted((min(a, b), max(a, b)) for a, b in pairs))
    exons = exons or ((points[0], points[-1]),)
    tx = Transcript(draw(st.sampled_from(TX_TYPES)), exons)
    if draw(st.booleans()):
        first, last = exons[0][0], exons[-1][1]
        if draw(st.booleans()):
            cds = (first, last)
        else:
            a, b = draw(st.integers(first, last)), draw(st.integers(first, last))
            cds = (min(a, b), max(a, b))
        tx = Transcript(tx.type, exons, cds, draw(st.integers(0, 2)))
        assume(tx.cds_segments())
    return tx


@st.composite
def genes(draw, window: int) -> Gene:
    a, b = draw(st.integers(0, window - 1)), draw(st.integers(0, window - 1))
    start, end = min(a, b), max(a, b)
    txs = tuple(draw(st.lists(transcripts(start, end), max_size=3)))
    assume(sum(t.type == DIRECT for t in txs) <= 1)  # a gene has at most one <direct> transcript
    return Gene(
        start,
        end,
        draw(st.sampled_from("+-.")),
        draw(st.sampled_from(GENE_TYPES)),
        txs,
        draw(st.booleans()),
        draw(st.booleans()),
        name="g",
    )


@st.composite
def windows(draw, max_window: int = 999_999) -> tuple[int, list[Gene]]:
    window = draw(st.integers(1, max_window))
    return window, draw(st.lists(genes(window), max_size=5))


@st.composite
def token_offsets(draw, window: int) -> list[tuple[int, int]]:
    """A BPE-like cover of [0, window) by tokens of 1..MAX_OFFSET bp, framed by [CLS]/[SEP] (0, 0)."""
    spans, pos = [(0, 0)], 0
    rng = random.Random(draw(st.integers(0, 2**32)))
    while pos < window:
        length = min(window - pos, rng.choice([1, 2, 3, 4, 5, 6, 8, 12, MAX_OFFSET]))
        spans.append((pos, pos + length))
        pos += length
    return [*spans, (0, 0)]


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(windows())
def test_number_round_trip(case):
    window, gs = case
    text = genes_to_text(gs)
    result = text_to_genes(text, window_length=window)
    assert result.errors == []
    assert result.genes == normalise(gs)
    assert genes_to_text(result.genes) == text  # canonical: one text per annotation


@SETTINGS
@given(windows(max_window=3000), st.data())
def test_pointer_round_trip(case, data):
    window, gs = case
    scheme = PointerCoordinates(data.draw(token_offsets(window)), vocab_size=5000)
    result = decode(encode(gs, scheme), scheme)
    assert result.errors == []
    assert result.genes == normalise(gs)


VOCAB = codec_vocabulary()


@SETTINGS
@given(
    st.lists(st.sampled_from([*VOCAB[:80], *VOCAB[80:200], "ACGT", "[PAD]", pointer_token(3)]), max_size=80)
)
def test_decoding_is_total_and_yields_only_valid_genes(tokens):
    result = decode(tokens, NumberCoordinates(window_length=300_000))
    for gene in result.genes:
        assert gene_problems(gene) == []
    # Whatever was decoded is canonical and re-encodes to itself.
    assert text_to_genes(genes_to_text(result.genes)).genes == result.genes


@SETTINGS
@given(windows(max_window=20_000), st.data())
def test_garbage_between_genes_loses_only_the_damaged_record(case, data):
    window, gs = case
    gs = normalise(gs)
    assume(gs)
    tokens = encode(gs, NumberCoordinates())
    # Cut the first gene's record short and insert junk: only that gene is lost, with an error.
    first_len = len(encode(gs[:1], NumberCoordinates()))
    cut = data.draw(st.integers(1, first_len - 1))
    damaged = tokens[:cut] + ["GARBAGE", "<introns>"] + tokens[first_len:]
    result = decode(damaged, NumberCoordinates(window))
    assert result.errors
    rest = gs[1:]
    assert all(g in result.genes for g in rest)


# ---------------------------------------------------------------- documented examples


BACTERIAL = Gene(99, 998, "+", "gene", (Transcript(DIRECT, ((99, 998),), (99, 998)),))
EUKARYOTE = Gene(
    1000,
    9000,
    "-",
    "gene",
    (
        Transcript(
            "mRNA", ((1000, 1500), (2000, 2500), (3000, 3500), (4000, 4500), (5000, 9000)), (1200, 8000)
        ),
    ),
)


def test_tokens_per_gene_match_the_documented_counts():
    scheme = NumberCoordinates()
    assert len(encode([BACTERIAL], scheme)) == 8
    assert len(encode([EUKARYOTE], scheme)) == 13 + 4 * 4
    phased = Gene(0, 9, "+", "gene", (Transcript(DIRECT, ((0, 9),), (0, 9), 2),))
    assert encode([phased], scheme)[-1] == "<ph2>"


def test_target_framing_and_decoding_stop_at_eos():
    scheme = NumberCoordinates()
    tokens = target_tokens([BACTERIAL], scheme)
    assert tokens[0] == "[ATT]" and tokens[-1] == EOS
    trailing = [*tokens, *encode([EUKARYOTE], scheme)]  # anything after <eos> is not annotation
    assert decode(["<bos>", *trailing], scheme).genes == [BACTERIAL]


def test_transcript_span_is_written_only_when_it_differs_from_the_gene():
    inner = Gene(0, 999, "+", "gene", (Transcript("mRNA", ((10, 500),)), Transcript("mRNA", ((0, 999),))))
    tokens = encode([inner], NumberCoordinates())
    assert tokens.count("<span>") == 1
    assert text_to_genes(" ".join(tokens)).genes == normalise([inner])


def test_genes_crossing_the_window_edge_stay_open_not_complete():
    gene = Gene(900, 2100, "-", "gene", (Transcript("mRNA", ((900, 1200), (1500, 2100)), (1000, 2000)),))
    clipped = gene.clip(1000, 1999).shift(-1000)
    assert clipped.open_left and clipped.open_right
    tokens = encode([clipped], NumberCoordinates(1000))
    assert "<open_l>" in tokens and "<open_r>" in tokens
    assert text_to_genes(" ".join(tokens), window_length=1000).genes == [clipped]


@pytest.mark.parametrize(
    "text, message",
    [
        ("<gene> <n0> <n50> <n0> <n10> <+>", "end 10 < start 50"),
        ("<gene> <n0> <n5> <n2> <n0> <+>", "not a coordinate"),  # 2000 is outside a 1000-bp window
        ("<gene> <n0> <n5> <n0>", "ends inside a record"),
        ("<gene> <n0> <n5> <n0> <n9> <x>", "expected a strand"),
        ("<n5> <gene>", "expected a gene type"),
        ("<gene> <n0> <n1> <n0> <n9> <+> <mRNA> <cds> <n0> <n20> <n0> <n30>", "not inside its extent"),
        ("<gene> <n0> <n1> <n0> <n9> <+> <mRNA> <ph1>", "unexpected '<ph1>'"),
        ("<gene> <n0> <n1> <n0> <n9> <+> <direct> <direct> <cds_all>", "2 direct transcripts"),
        ("<gene> <n0> <n1> <n0> <n9> <+> <mRNA> <introns> <cds_all> <n0> <n3> <n0> <n5>", "not a coordinate"),
        ("<gene> <n0> <n1> <n0> <n9> <+> <mRNA> <introns> <n0> <n5> <n0> <n0>", "exons are not sorted"),
    ],
)
def test_malformed_records_are_reported_not_raised(text, message):
    result = text_to_genes(text, window_length=1000)
    assert any(message in e for e in result.errors), result.errors


def test_resynchronises_at_the_next_gene():
    good = genes_to_text([BACTERIAL])
    result = text_to_genes(f"<mRNA> <n3> junk <gene> <n0> <n1> <-> {good}")
    assert result.genes == [BACTERIAL]
    assert len(result.errors) == 2
    # Junk right after a record may be a garbled part of it: the record is not trusted.
    assert text_to_genes(f"{good} <ph9>").genes == []


def test_encoding_an_invalid_gene_names_the_problem():
    bad = Gene(10, 20, "+", "gene", (Transcript("mRNA", ((5, 20),)),), name="geneX")
    with pytest.raises(CodecError, match="geneX.*extends beyond its gene"):
        encode([bad], NumberCoordinates())
    two_direct = Gene(10, 20, "+", "gene", (Transcript(DIRECT, ((10, 20),)), Transcript(DIRECT, ((10, 15),))))
    with pytest.raises(CodecError, match="2 direct transcripts"):
        encode([two_direct], NumberCoordinates())
    with pytest.raises(CodecError, match="outside the window"):
        encode([Gene(10, 2000, "+")], NumberCoordinates(window_length=1000))
    with pytest.raises(CodecError, match="cannot be a token"):
        type_token("cds")


def test_no_vocabulary_token_occurs_inside_another():
    joined = "\x00".join(VOCAB)
    assert len(set(VOCAB)) == len(VOCAB)
    for token in VOCAB:
        assert joined.count(token) == 1, token


# ---------------------------------------------------------------- coordinate schemes


def test_number_scheme_legal_tokens_follow_the_window():
    scheme = NumberCoordinates(window_length=2500)
    assert scheme.encode(2499) == ["<n2>", "<n499>"]
    assert scheme.legal_first() == ["<n0>", "<n1>", "<n2>"]
    assert len(scheme.legal_second("<n2>")) == 500 and len(scheme.legal_second("<n1>")) == 1000
    assert scheme.decode("<n2>", "<n500>") is None and scheme.decode("<n0>", "<o1>") is None
    with pytest.raises(CoordinateError):
        NumberCoordinates(window_length=1_000_001)


def test_pointer_scheme_addresses_every_base_once():
    offsets = [(0, 0), (0, 3), (3, 4), (4, 10), (0, 0)]
    scheme = PointerCoordinates(offsets, vocab_size=100)
    for bp in range(10):
        first, second = scheme.encode(bp)
        assert scheme.decode(first, second) == bp
        assert first in scheme.legal_first() and second in scheme.legal_second(first)
    assert scheme.encode(5) == ["<@3>", "<o1>"]
    assert scheme.legal_first() == ["<@1>", "<@2>", "<@3>"]
    assert scheme.legal_pointer_ids() == [101, 102, 103]
    assert scheme.offset_limit(103) == 6 and scheme.offset_limit(100) == 0  # [CLS] is not addressable
    assert scheme.decode("<@0>", "<o0>") is None  # special token
    assert scheme.decode("<@2>", "<o1>") is None  # past the token's end
    with pytest.raises(CoordinateError, match="no DNA token"):
        scheme.encode(10)
    with pytest.raises(CoordinateError, match="MAX_OFFSET"):
        PointerCoordinates([(0, MAX_OFFSET + 1)], vocab_size=100)


# ---------------------------------------------------------------- every window of every real genome


def genome_windows(fasta, gff, window: int, stride: int):
    """(window DNA, window-relative genes) for overlapping windows tiling every sequence."""
    from genome_io.fasta import read_fasta
    from genome_io.gff import read_gff

    sequences = dict(read_fasta(fasta))
    genes_by_seqid = read_gff(gff, {k: len(v) for k, v in sequences.items()}).genes_by_seqid
    for seqid, seq in sequences.items():
        genes = genes_by_seqid.get(seqid, [])
        for lo in range(0, max(len(seq) - window, 0) + stride, stride):
            hi = min(lo + window, len(seq))  # 0-based half-open; genes are 1-based
            clipped = (g.clip(lo + 1, hi) for g in genes if g.start <= hi and g.end > lo)
            yield seq[lo:hi], [c.shift(-(lo + 1)) for c in clipped if c is not None]


@pytest.mark.genomes
@pytest.mark.parametrize("name", GENOME_NAMES or ["<none>"])
def test_round_trip_on_every_window_of_real_genomes(name, gff_tokenizer):
    from tokenization.tokenizer import encode_source

    fasta, gff = shared_genome(name)
    windows_seen = genes_seen = 0
    for i, (dna, gs) in enumerate(genome_windows(fasta, gff, window=60_000, stride=20_000)):
        assert text_to_genes(genes_to_text(gs), window_length=len(dna)).genes == normalise(gs)
        if i % 10 == 0:  # the pointer scheme needs the window tokenized: every 10th window is plenty
            scheme = PointerCoordinates(
                encode_source(gff_tokenizer, dna)["token_offsets"], len(gff_tokenizer)
            )
            assert decode(encode(gs, scheme), scheme).genes == normalise(gs)
        windows_seen += 1
        genes_seen += len(gs)
    assert windows_seen and genes_seen
