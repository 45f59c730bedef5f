"""Baselines: the ORF floor on planted ORFs and against a brute-force scan; Prodigal's open ends and anchors;
AUGUSTUS on a yeast slice (stop codons, soft-masking, N runs, errors)."""

from __future__ import annotations

import random
import shutil

import pytest
from Bio.Seq import Seq, reverse_complement

from core.errors import InputError
from core.features import DIRECT
from genome_io.baselines import augustus_genes, baseline_speed, orf_floor_genes, prodigal_genes
from genome_io.fasta import read_fasta
from genome_io.gff import read_gff
from scoring.metrics import score
from tests.fixtures.genomes import needs_augustus, random_dna, shared_genome, write_text, yeast_slice

STOPS = ("TAA", "TAG", "TGA")
STARTS = ("ATG", "GTG", "TTG")
SENSE = [a + b + c for a in "ACGT" for b in "ACGT" for c in "ACGT" if a + b + c not in STOPS]


def sense_codons(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(SENSE) for _ in range(n))


def brute_force_orfs(sequence: str, min_len: int, starts=STARTS) -> set[tuple[int, int, str]]:
    """Codon by codon: the first start after each in-frame stop or N opens an ORF that the next stop closes."""
    found = set()
    for strand, seq in (("+", sequence), ("-", reverse_complement(sequence))):
        for frame in range(3):
            start = None
            for i in range(frame, len(seq) - 2, 3):
                codon = seq[i : i + 3]
                if codon in STOPS:
                    if start is not None and i + 3 - start >= min_len:
                        s, e = start + 1, i + 3
                        found.add((s, e, "+") if strand == "+" else (len(seq) - e + 1, len(seq) - s + 1, "-"))
                    start = None
                elif "N" in codon:
                    start = None
                elif start is None and codon in starts:
                    start = i
    return found


def as_tuples(genes):
    return {(g.start, g.end, g.strand) for g in genes}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("taxon, starts", [("prokaryotes", STARTS), ("unicellular", ("ATG",))])
def test_orf_floor_matches_brute_force(seed, taxon, starts):
    # Short minimum so that random DNA has dozens of ORFs, with N runs and a length not divisible by 3.
    sequence = random_dna(6001, seed=seed) + "NNNN" + random_dna(2000, seed=seed + 10)
    genes = orf_floor_genes([("s", sequence)], taxon, min_len=150)["s"]
    assert len(genes) > 10
    assert as_tuples(genes) == brute_force_orfs(sequence, 150, starts)
    soft_masked_rna = sequence.lower().replace("t", "u")  # read as the DNA it spells, no copy upper-cased
    assert orf_floor_genes([("s", soft_masked_rna)], taxon, min_len=150)["s"] == genes


def test_eukaryote_orf_floor_is_300_bp_from_atg():
    rng = random.Random(3)
    # GTG (a start for prokaryotes only), then ATG, then 447 bp of sense codons and a stop.
    orf = "TAA" + "GTG" + sense_codons(rng, 10) + "ATG" + sense_codons(rng, 149) + "TGA"
    spacer = "TTAATTAATTAA" * 20
    sequence = spacer + orf + spacer
    atg = len(spacer) + 3 + 3 + 30 + 1  # 1-based
    assert as_tuples(orf_floor_genes([("s", sequence)])["s"]) == set()  # prokaryotes: 600 bp
    for taxon in ("unicellular", "plants", "invertebrates", "vertebrates"):
        assert as_tuples(orf_floor_genes([("s", sequence)], taxon)["s"]) == {(atg, atg + 452, "+")}


def test_orf_floor_finds_planted_orfs_with_their_longest_start():
    rng = random.Random(7)
    # An in-frame stop, then TTG (the longest start), a later in-frame ATG, 700 bp of sense codons, a stop.
    plus = "TAA" + "TTG" + sense_codons(rng, 20) + "ATG" + sense_codons(rng, 210) + "TGA"
    minus = "TAG" + "GTG" + sense_codons(rng, 250) + "TAA"
    short = "TAA" + "ATG" + sense_codons(rng, 150) + "TAG"  # 459 bp: below the floor
    spacer = "TTAATTAATTAA"  # stops in all frames on both strands keep the background quiet
    parts = [spacer * 20, plus, spacer * 20, reverse_complement(minus), spacer * 20, short, spacer * 20]
    sequence = "".join(parts)
    plus_start = len(parts[0]) + 3 + 1  # the TTG, 1-based
    minus_end = len("".join(parts[:4])) - 3  # the GTG's last base, 1-based (the gene's 5' end on '-')
    expected = {
        (plus_start, plus_start + len(plus) - 4, "+"),
        (minus_end - len(minus) + 4, minus_end, "-"),
    }
    genes = orf_floor_genes([("s", sequence)])["s"]
    assert as_tuples(genes) == expected
    gene = genes[0]
    assert gene.type == "gene" and gene.transcripts[0].type == DIRECT
    assert gene.transcripts[0].cds == gene.transcripts[0].exons[0] == (gene.start, gene.end)
    for g in genes:  # translation: start codon, stop codon, multiple of three
        cds = sequence[g.start - 1 : g.end]
        cds = cds if g.strand == "+" else reverse_complement(cds)
        assert cds[:3] in STARTS and cds[-3:] in STOPS and len(cds) % 3 == 0


def test_prodigal_open_ends_follow_the_genomic_edges():
    """Meta mode (short input): genes cut by the left / right contig edge are open on that side, whatever the strand."""
    rng = random.Random(5)
    left = sense_codons(rng, 400) + "TAA"  # '+' gene running off the left edge: no start codon
    middle = "ATG" + sense_codons(rng, 400) + "TGA"
    right = reverse_complement(sense_codons(rng, 400) + "TAG")  # '-' gene whose 5' end runs off the right
    pieces = [left, random_dna(3000, 1), middle, random_dna(3000, 2), reverse_complement(middle)]
    sequence = "".join([*pieces, random_dna(3000, 3), right])
    genes = {(g.start, g.end, g.strand): g for g in prodigal_genes([("s", sequence)])["s"]}
    n = len(sequence)
    at_left = genes[(1, len(left), "+")]
    assert at_left.open_left and not at_left.open_right
    at_right = genes[(n - len(right) + 1, n, "-")]
    assert at_right.open_right and not at_right.open_left
    complete = [g for g in genes.values() if g.start > 1 and g.end < n]
    assert complete and not any(g.open_left or g.open_right for g in complete)
    m1 = len(left) + 3001
    assert (m1, m1 + len(middle) - 1, "+") in genes


def test_prodigal_reads_a_fasta_path(tmp_path):
    fasta = write_text(tmp_path / "g.fa.gz", f">a\n{random_dna(9000, 3)}\n>b\n{random_dna(4000, 4)}\n")
    genes, bp_per_second = baseline_speed(prodigal_genes, fasta)
    assert set(genes) == {"a", "b"} and bp_per_second > 0
    assert all(g.transcripts[0].cds == (g.start, g.end) for gs in genes.values() for g in gs)


@pytest.mark.genomes
@pytest.mark.parametrize(
    "name, three_prime, exact", [("bsub168", 0.976, 0.885), ("tpallidum_nichols", 0.952, 0.678)]
)
def test_prodigal_reproduces_the_anchors(name, three_prime, exact):
    """NOTES.md anchors (pyrodigal single-genome mode); this scorer's pseudogene rule may add up to 0.01."""
    fasta, gff = shared_genome(name)
    records = list(read_fasta(fasta))
    reference = read_gff(gff, {seqid: len(s) for seqid, s in records}).genes_by_seqid
    scores = score(reference, prodigal_genes(records))
    assert scores.gene_3prime.f1 > 0.95
    assert scores.gene_3prime.f1 == pytest.approx(three_prime, abs=0.01)
    assert scores.gene_exact.f1 == pytest.approx(exact, abs=0.01)
    if name == "bsub168":  # the trivial floor: about 0.75 (3') / 0.48 (exact)
        floor = score(reference, orf_floor_genes(records))
        assert floor.gene_3prime.f1 == pytest.approx(0.75, abs=0.03)
        assert floor.gene_exact.f1 == pytest.approx(0.48, abs=0.04)


def cds_of(sequence: str, gene) -> str:
    """The spliced CDS of a gene's transcript, 5' to 3'."""
    (transcript,) = gene.transcripts
    cds = "".join(sequence[s - 1 : e] for s, e in transcript.cds_segments())
    return cds if gene.strand == "+" else reverse_complement(cds)


@pytest.mark.genomes
@pytest.mark.parametrize("species", ["saccharomyces", "schizosaccharomyces_pombe"])
def test_augustus_genes_are_whole_cds_chains_with_the_stop(species):
    """schizosaccharomyces_pombe excludes the stop codon from CDS by default: the baseline includes it."""
    needs_augustus()
    sequence, reference = yeast_slice()
    genes = augustus_genes([("c1", sequence)], species)["c1"]
    complete = [g for g in genes if not (g.open_left or g.open_right)]
    assert len(complete) >= 6
    for gene in complete:
        assert [t.type for t in gene.transcripts] == ["mRNA"]
        protein = str(Seq(cds_of(sequence, gene)).translate())
        assert protein.startswith("M") and protein.endswith("*") and "*" not in protein[:-1], gene
    if species == "saccharomyces":  # trained on this yeast: its genes are the reference's
        assert score({"c1": reference}, {"c1": genes}).gene.f1 > 0.7
        # The 3' end of the slice cuts a gene: it runs off the edge, open there.
        assert genes[-1].end == len(sequence) and genes[-1].open_right


@pytest.mark.genomes
def test_augustus_reads_lower_case_as_soft_masking_and_calls_around_n_runs():
    needs_augustus()
    sequence, _ = yeast_slice()
    plain = augustus_genes([("c1", sequence)], "saccharomyces")["c1"]
    masked_span = (5001, 7500)  # 1-based: holds two whole genes
    masked = sequence[:5000] + sequence[5000:7500].lower() + sequence[7500:]
    inside = [g for g in plain if masked_span[0] <= g.start and g.end <= masked_span[1]]
    assert len(inside) == 2
    # Soft-masked repeats discourage exons: those two genes go, the others stay as they were.
    assert augustus_genes([("c1", masked)], "saccharomyces")["c1"] == [g for g in plain if g not in inside]
    # A 5 kbp N run (a scaffold gap) between two genes: the same genes, shifted past the gap.
    cut = 12_000
    gapped = augustus_genes([("c1", sequence[:cut] + "N" * 5000 + sequence[cut:])], "saccharomyces")["c1"]
    assert [g for g in gapped if g.end <= cut] == [g for g in plain if g.end <= cut]
    assert [g.shift(-5000) for g in gapped if g.start > cut + 5000] == [g for g in plain if g.start > cut]
    assert len(gapped) == len(plain)


def test_augustus_failures_are_input_errors_and_no_gene_is_no_error(monkeypatch):
    if shutil.which("augustus"):
        with pytest.raises(InputError, match="--species=no_such_set failed"):
            augustus_genes([("c1", random_dna(3000))], "no_such_set")
        assert augustus_genes([("gap", "N" * 5000), ("c2", "ACGT")], "saccharomyces") == {"gap": [], "c2": []}
    monkeypatch.setenv("PATH", "")
    with pytest.raises(InputError, match="augustus: not installed"):
        augustus_genes([("c1", random_dna(3000))], "saccharomyces")
