"""Scoring: hand-computed cases at every level, self-scores, regions, and the CLI (tables, JSON, bad input)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from core.features import Gene, Transcript
from genome_io.baselines import orf_floor_genes
from genome_io.fasta import fasta_lengths
from genome_io.gff import read_gff
from genome_io.gff3_writer import write_gff3
from scoring.__main__ import main
from scoring.metrics import LevelScore, Scores, score
from scoring.report import format_table
from tests.fixtures.genes import coding
from tests.fixtures.genomes import needs_augustus, shared_genome, write_text, yeast_slice

# Reference: A (+), B (-), C (+, two spliced isoforms), P (a pseudogene), T (a tRNA: not scored).
C1 = Transcript("mRNA", ((2000, 2100), (2200, 2400)), (2050, 2300))  # CDS 2050-2100, 2200-2300
C2 = Transcript("mRNA", ((2000, 2100), (2250, 2400)), (2050, 2350))  # CDS 2050-2100, 2250-2350
REFERENCE = {
    "c1": [
        coding(100, 399),
        coding(1000, 1299, "-"),
        Gene(2000, 2400, "+", transcripts=(C1, C2)),
        coding(3000, 3299, gene_type="pseudogene"),
        Gene(4000, 4071, "+", transcripts=(Transcript("tRNA", ((4000, 4071),)),)),
    ]
}
# Prediction: A' (same stop, later start), B' (exact), C' (isoform 1's chain exactly), P' (the
# pseudogene: ignored), X (false positive), Y (A's bases on the other strand), T' (the tRNA: ignored).
PREDICTION = {
    "c1": [
        coding(130, 399),
        coding(1000, 1299, "-"),
        Gene(2050, 2300, "+", transcripts=(Transcript("mRNA", ((2050, 2100), (2200, 2300)), (2050, 2300)),)),
        coding(3000, 3299),
        coding(5000, 5299),
        coding(100, 399, "-"),
        Gene(4000, 4071, "+", transcripts=(Transcript("tRNA", ((4000, 4071),)),)),
    ]
}


def counts(level: LevelScore) -> tuple[int, int, int, int]:
    return level.found, level.reference, level.correct, level.predicted


def test_hand_computed_levels():
    s = score(REFERENCE, PREDICTION)
    # Scored genes: reference A, B, C (3); prediction A', B', C', X, Y (5).
    # 3': A, B, C all found (C' ends at isoform 1's stop 2300); A', B', C' correct.
    assert counts(s.gene_3prime) == (3, 3, 3, 5)
    # exact start+stop: B and C (isoform 1 span 2050-2300); A' starts late.
    assert counts(s.gene_exact) == (2, 3, 2, 5)
    # gene (any chain): B, C.
    assert counts(s.gene) == (2, 3, 2, 5)
    # transcripts: reference chains A, B, C1, C2 (4); predicted A', B', C', X, Y (5); shared B, C1.
    assert counts(s.transcript) == (2, 4, 2, 5)
    # CDS segments: reference A, B, 2050-2100 (shared by C1 and C2), 2200-2300, 2250-2350 (5);
    # predicted A', B', 2050-2100, 2200-2300, X, Y (6); shared B, 2050-2100, 2200-2300.
    assert counts(s.exon) == (3, 5, 3, 6)
    # Coding bases: reference A 300 + B 300 + C (51 + 151 for 2200-2350) = 802;
    # predicted A' 270 + B' 300 + C' (51 + 101) + X 300 + Y 300 = 1322; shared 270 + 300 + 152 = 722.
    assert counts(s.nucleotide) == (722, 802, 722, 1322)
    assert s.nucleotide.sensitivity == pytest.approx(722 / 802)
    assert s.nucleotide.precision == pytest.approx(722 / 1322)
    sn, pr = 3 / 5, 3 / 6
    assert s.exon.f1 == pytest.approx(2 * sn * pr / (sn + pr))


def test_reference_against_itself_is_perfect():
    s = score(REFERENCE, REFERENCE)
    for level in Scores.levels():
        assert (s[level].sensitivity, s[level].precision, s[level].f1) == (1.0, 1.0, 1.0), level


def test_moved_stop_and_moved_start():
    reference = {"c1": [coding(100, 399), coding(1000, 1299, "-")]}
    moved_stop = {"c1": [coding(100, 402), coding(1000, 1299, "-")]}
    s = score(reference, moved_stop)
    assert counts(s.gene_3prime) == (1, 2, 1, 2) and counts(s.gene_exact) == (1, 2, 1, 2)
    assert counts(s.nucleotide) == (600, 600, 600, 603)
    # A '-' strand gene's stop is its left end: moving its right end (the start) keeps the 3' match.
    moved_start = {"c1": [coding(100, 399), coding(1000, 1302, "-")]}
    s = score(reference, moved_start)
    assert counts(s.gene_3prime) == (2, 2, 2, 2) and counts(s.gene_exact) == (1, 2, 1, 2)
    # The same move on the '+' strand is a stop change.
    s = score({"c1": [coding(1000, 1299)]}, {"c1": [coding(1000, 1302)]})
    assert s.gene_3prime.f1 == 0.0


def test_empty_sides_and_seqids():
    s = score(REFERENCE, {})
    assert (
        s.gene_3prime.sensitivity == 0.0 and math.isnan(s.gene_3prime.precision) and s.gene_3prime.f1 == 0.0
    )
    s = score({}, PREDICTION)
    assert math.isnan(s.gene.sensitivity) and s.gene.precision == 0.0
    assert math.isnan(score({}, {}).exon.f1)
    # Same coordinates on another seqid are a different gene.
    assert score(REFERENCE, {"c2": PREDICTION["c1"]}).gene_3prime.found == 0
    assert score(REFERENCE, {}).as_dict()["gene"]["precision"] is None  # JSON-friendly


def test_region_counts_genes_wholly_inside():
    # Region 900-2450 holds B and C on both sides; A/A' and Y lie outside; X too.
    s = score(REFERENCE, PREDICTION, region=("c1", 900, 2450))
    assert counts(s.gene_3prime) == (2, 2, 2, 2)
    assert counts(s.transcript) == (2, 3, 2, 2)
    # A gene crossing the region's edge is left out on both sides.
    s = score(REFERENCE, PREDICTION, region=("c1", 1100, 2450))
    assert counts(s.gene_3prime) == (1, 1, 1, 1)
    assert score(REFERENCE, PREDICTION, region=("other", 1, 10**9)).gene.reference == 0


def test_scores_add_up_over_parts():
    left, right = ("c1", 1, 1500), ("c1", 1501, 6000)
    total = score(REFERENCE, PREDICTION, left) + score(REFERENCE, PREDICTION, right)
    assert total == score(REFERENCE, PREDICTION)


def test_pseudogenic_transcripts_are_excluded():
    ref = {
        "c1": [
            Gene(
                100, 399, "+", transcripts=(Transcript("pseudogenic_transcript", ((100, 399),), (100, 399)),)
            )
        ]
    }
    s = score(ref, {"c1": [coding(100, 399), coding(700, 999)]})
    assert counts(s.gene_3prime) == (0, 0, 0, 1)  # the read-through call is neither right nor wrong


def test_format_table_lists_every_level():
    table = format_table({"prediction": score(REFERENCE, PREDICTION), "self": score(REFERENCE, REFERENCE)})
    lines = table.splitlines()
    assert "prediction" in lines[0] and "self" in lines[0]
    assert any(line.startswith("gene 3'") and "1.000 0.600 0.750" in line for line in lines)
    assert [cell.strip() for cell in lines[-1].split("|")[1:]] == ["3 / 5", "3 / 3"]


# --- CLI ---------------------------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path):
    lengths = {"c1": 6000}
    fasta = write_text(tmp_path / "g.fa", ">c1\n" + "ACGT" * 1500 + "\n")
    write_gff3(REFERENCE, lengths, tmp_path / "ref.gff3")
    write_gff3(PREDICTION, lengths, tmp_path / "pred.gff3.gz")
    return fasta, tmp_path / "ref.gff3", tmp_path / "pred.gff3.gz"


def test_cli_json_matches_the_library(files, capsys):
    fasta, ref, pred = files
    assert main(["--reference", str(ref), "--prediction", str(pred), "--fasta", str(fasta), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["prediction"] == score(REFERENCE, PREDICTION).as_dict()


def test_cli_table_with_baselines_and_region(files, capsys):
    fasta, ref, pred = files
    argv = ["--reference", str(ref), "--prediction", str(pred), "--fasta", str(fasta), "--baseline", "orf"]
    assert main([*argv, "prodigal", "--region", "c1:900-2,450"]) == 0
    captured = capsys.readouterr()
    header = captured.out.splitlines()[0]
    assert "prediction" in header and "orf" in header and "prodigal" in header
    assert "gene 3' (strand+stop)   | 1.000 1.000 1.000" in captured.out  # the region holds B and C only


@pytest.mark.genomes
def test_cli_augustus_and_eukaryote_orf_floor_columns(tmp_path, capsys):
    """A yeast slice: AUGUSTUS (saccharomyces, the unicellular default; trained on this yeast) beside the
    eukaryote ORF floor (>= 300 bp from ATG), the floor's column being exactly `orf_floor_genes`'s."""
    needs_augustus()
    sequence, reference = yeast_slice()
    fasta = write_text(tmp_path / "slice.fa", f">c1\n{sequence}\n")
    write_gff3({"c1": reference}, {"c1": len(sequence)}, tmp_path / "ref.gff3")
    argv = ["--reference", str(tmp_path / "ref.gff3"), "--fasta", str(fasta), "--baseline", "augustus", "orf"]
    assert main([*argv, "--taxon", "unicellular", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["augustus"]["gene"]["f1"] > 0.7
    floor = score({"c1": reference}, orf_floor_genes([("c1", sequence)], "unicellular"))
    assert (
        out["orf"]
        == floor.as_dict()
        != score({"c1": reference}, orf_floor_genes([("c1", sequence)])).as_dict()
    )
    # A named parameter set overrides the taxon's default (none for prokaryotes).
    assert main([*argv[:-1], "--augustus_species", "schizosaccharomyces_pombe"]) == 0
    assert "augustus" in capsys.readouterr().out.splitlines()[0]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--reference", "{tmp}/missing.gff3", "--prediction", "{pred}"], "missing.gff3: no such file"),
        (
            ["--reference", "{ref}", "--prediction", "{other}", "--fasta", "{fasta}"],
            "other.gff3: 1 gene(s) lie outside the sequences of",
        ),
        (
            ["--reference", "{ref}", "--prediction", "{pred}", "--fasta", "{tmp}/bad.fa"],
            "bad.fa:2: invalid character",
        ),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(files, tmp_path, capsys, argv, message):
    fasta, ref, pred = files
    write_gff3({"c9": [coding(1, 300)]}, {"c9": 900}, tmp_path / "other.gff3")
    write_text(tmp_path / "bad.fa", ">c1\nACGTXACGT\n")
    names = {"tmp": tmp_path, "ref": ref, "pred": pred, "fasta": fasta, "other": tmp_path / "other.gff3"}
    assert main([a.format(**names) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()  # read summaries, then the error
    assert (
        err[-1].startswith("python -m scoring: error: ")
        and message in err[-1]
        and "Traceback" not in "".join(err)
    )


def test_cli_augustus_failure_is_one_line_and_exit_2(files, capsys):
    needs_augustus()
    fasta, ref, _ = files
    argv = [
        "--reference",
        str(ref),
        "--fasta",
        str(fasta),
        "--baseline",
        "augustus",
        "--augustus_species",
        "nope",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(
        "python -m scoring: error: augustus: --species=nope failed: "
    ) and "Traceback" not in "".join(err)


def test_cli_usage_errors(files, capsys):
    _, ref, pred = files
    for argv in (["--reference", str(ref)], ["--reference", str(ref), "--baseline", "prodigal"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    assert "--baseline needs --fasta" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--reference", str(ref), "--fasta", str(ref), "--baseline", "augustus"])
    assert (
        "--baseline augustus needs --augustus_species (no default for prokaryotes)" in capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        main(["--reference", str(ref), "--prediction", str(pred), "--region", "c1:20-10"])


def test_module_entry_point_reports_without_traceback(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "scoring", "--reference", str(tmp_path / "nope.gff3"), "--prediction", "x"],
        capture_output=True,
        text=True,
    )
    assert (
        done.returncode == 2 and "Traceback" not in done.stderr and "nope.gff3: no such file" in done.stderr
    )


@pytest.mark.genomes
@pytest.mark.parametrize("name", ["scer_chrI_II", "atha_tair10_1pct", "paracoccus_scn6821"])
def test_real_reference_against_itself(name):
    fasta, gff = shared_genome(name)
    genes = read_gff(gff, fasta_lengths(fasta)).genes_by_seqid
    s = score(genes, genes)
    assert all(s[level].f1 == 1.0 for level in Scores.levels())
    # Keeping a fifth of the genes costs sensitivity only.
    thinned = {seqid: gs[::10] + gs[1::10] for seqid, gs in genes.items()}
    s = score(genes, thinned)
    assert s.gene.precision == 1.0 and s.gene.sensitivity < 0.3
    # Moving every gene by one codon breaks every exact match but keeps most coding bases.
    s = score(genes, {seqid: [g.shift(3) for g in gs] for seqid, gs in genes.items()})
    assert s.gene_exact.f1 < 0.01 and s.nucleotide.sensitivity > 0.9
