"""annotate.py: tiling, stitching, coordinates, GFF3 validity and every bad-input case."""

from __future__ import annotations

import math
import shutil
import subprocess
from dataclasses import replace
from types import SimpleNamespace
from unittest.mock import patch

import pytest
import torch
from Bio.Seq import reverse_complement
from transformers import AutoTokenizer

import annotate
from annotation.annotator import (
    AnnotationOptions,
    AnnotationStats,
    OptionError,
    WindowAnnotator,
    annotate_contigs,
    annotate_records,
    merge_reads,
    token_log_probs,
)
from annotation.constraints import GeneticCode
from annotation.starts import pick_start, start_weight_vector
from annotation.windows import StitchStats, Window, place, stitch, tile, window_starts
from core.errors import InputError
from core.features import DIRECT, Gene, Transcript
from core.orfs import coding_gene
from genome_io.gff import read_gff
from genome_io.gff3_writer import gff3_lines
from tests.fixtures.genomes import random_dna, write_text
from tests.fixtures.training import tiny_model_dir
from tests.test_constraints import check_biology
from tests.test_modeling import TARGET, memorised, source_batch, tiny_model
from tokenization.codec import encode
from tokenization.coordinates import NumberCoordinates
from tokenization.tokenizer import encode_source, tokens_to_ids

__all__ = ["tiny_model_dir"]  # fixtures used here

# ---------------------------------------------------------------- tiling


@pytest.mark.parametrize("length", [1, 999, 1000, 1001, 4321, 10_000])
def test_windows_cover_every_base_with_the_overlap(length):
    size, overlap = 1000, 200
    starts = window_starts(length, size, overlap)
    assert starts[0] == 0 and min(length, starts[-1] + size) == length
    for a, b in zip(starts, starts[1:], strict=False):
        assert a + size - b >= overlap  # neighbours share at least `overlap` bases
    assert len(starts) == 1 or len(window_starts(length, size, overlap)) <= -(
        -(length - overlap) // (size - overlap)
    )


def test_tiling_skips_long_n_runs_and_marks_only_inner_edges_open():
    contig = random_dna(1500, seed=1) + "N" * 500 + random_dna(300, seed=2).lower()
    windows = tile("c", contig, size=1000, overlap=200)
    assert all("N" * 100 not in w.sequence for w in windows)
    assert (
        windows[-1].sequence == contig[-300:].upper() and windows[-1].start == 2000
    )  # short stretch: one window
    assert [(w.open_left, w.open_right) for w in windows] == [(False, True), (True, False), (False, False)]


# ---------------------------------------------------------------- stitching


def predictions_of(gene: Gene, windows: list[Window], score: float = -1.0):
    """What perfect windows would predict for `gene` (1-based): its clip to each window, window-level."""
    out = []
    for index, window in enumerate(windows):
        part = gene.clip(window.start + 1, window.end)
        if part is not None:
            out += place(window, index, [part.shift(-(window.start + 1))], [score])
    return out


def spliced_gene(strand: str) -> Gene:
    mrna = Transcript("mRNA", ((101, 700), (801, 1500), (1601, 2300)), cds=(301, 2100), phase=0)
    return Gene(101, 2300, strand, "gene", (mrna,))


@pytest.mark.parametrize("strand", ["+", "-"])
def test_a_gene_cut_by_window_edges_is_joined_back_exactly(strand):
    windows = tile("c", random_dna(3000, seed=4), size=1000, overlap=300)
    gene = spliced_gene(strand)
    stats = StitchStats()
    kept = stitch(predictions_of(gene, windows), windows, stats)
    assert [p.gene for p in kept] == [gene]
    assert stats.joined >= 2


def test_duplicates_collapse_and_conflicts_go_to_the_higher_score():
    windows = tile("c", random_dna(2000, seed=5), size=1200, overlap=400)  # 1..1200 and 801..2000
    gene = Gene(901, 1100, "+", "gene", (Transcript(DIRECT, ((901, 1100),), (901, 1100)),))
    rival = Gene(904, 1100, "+", "gene", (Transcript(DIRECT, ((904, 1100),), (904, 1100)),))

    def seen_by(index, g, score):
        return place(windows[index], index, [g.shift(-(windows[index].start + 1))], [score])

    kept = stitch([*seen_by(0, gene, -0.5), *seen_by(1, gene, -0.2)], windows)
    assert [(p.gene, p.score) for p in kept] == [(gene, -0.2)]
    kept = stitch([*seen_by(0, gene, -0.5), *seen_by(1, rival, -0.1)], windows)
    assert [p.gene for p in kept] == [rival]
    # Two overlapping genes of ONE window both stay (operons overlap), unless they share their stop
    # (one gene, two starts: tests/test_bad_input.py).
    neighbour = Gene(1001, 1190, "+", "gene", (Transcript(DIRECT, ((1001, 1190),), (1001, 1190)),))
    both = place(windows[0], 0, [gene.shift(-1), neighbour.shift(-1)], [-1.0, -2.0])
    assert len(stitch(both, windows)) == 2


def test_a_cut_piece_loses_to_the_whole_copy_and_contig_ends_stay_open():
    windows = tile("c", random_dna(2000, seed=6), size=1200, overlap=400)
    gene = Gene(1101, 1400, "-", "gene", (Transcript(DIRECT, ((1101, 1400),), (1101, 1400)),))
    kept = stitch(predictions_of(gene, windows), windows)
    assert [p.gene for p in kept] == [gene]
    at_end = Gene(
        1901, 2000, "+", "gene", (Transcript(DIRECT, ((1901, 2000),), (1901, 2000)),), open_right=True
    )
    kept = stitch(predictions_of(at_end, windows), windows)
    assert [p.gene for p in kept] == [at_end] and kept[0].gene.open_right


def test_a_coding_gene_overlapping_a_longer_one_too_much_is_dropped_on_either_strand():
    windows = tile("c", random_dna(30_000, seed=7), size=30_000, overlap=0)  # one window
    real = coding_gene(1001, 2500, "-")
    shadow = coding_gene(1201, 1800, "+")  # inside the real gene, on the other strand
    crossing = coding_gene(2301, 3000, "+")  # 200 bp into it, same score
    neighbour = coding_gene(2461, 3400, "-")  # 40 bp overlap: operon neighbours stay
    lonely = coding_gene(5001, 5300, "+")
    ncrna = Gene(1501, 1600, "+", "ncRNA_gene", (Transcript("ncRNA", ((1501, 1600),)),))
    genes = [real, shadow, crossing, neighbour, lonely, ncrna]
    scores = [-0.5, -0.01, -0.5, -0.3, -0.2, -0.1]  # the shadow ORF scores higher: length decides
    predictions = place(windows[0], 0, [g.shift(-1) for g in genes], scores)
    stats = StitchStats()
    kept = stitch(predictions, windows, stats, max_overlap=60)
    assert [p.gene for p in kept] == sorted([real, neighbour, lonely, ncrna])
    assert stats.overlapping == 2
    assert len(stitch(predictions, windows)) == 6  # no limit: every gene stays
    # The limit is inclusive: at 599 bp the crossing gene (540 bp into its neighbour) stays, the shadow
    # (600 bp inside the real gene) does not.
    assert shadow not in [p.gene for p in stitch(predictions, windows, max_overlap=599)]
    assert len(stitch(predictions, windows, max_overlap=599)) == 5
    assert len(stitch(predictions, windows, max_overlap=600)) == 6


def test_starts_move_before_the_overlap_limit_weighs_the_genes():
    """A real gene decoded with a late start is shorter than the shadow ORF across it; at its longest start
    it is longer, and stays."""
    windows = tile("c", random_dna(10_000, seed=8), size=10_000, overlap=0)
    late, shadow = coding_gene(2001, 2600, "+"), coding_gene(1601, 2400, "-")
    predictions = place(windows[0], 0, [late.shift(-1), shadow.shift(-1)], [-0.5, -0.5])
    whole = coding_gene(1201, 2600, "+")  # where its ORF's longest start is

    def move_start(gene):
        return whole if gene == late else gene

    stats = StitchStats()
    assert [p.gene for p in stitch(predictions, windows, stats, 60, move_start)] == [whole]
    assert stats.moved_starts == 1 and stats.overlapping == 1
    assert [p.gene for p in stitch(predictions, windows, max_overlap=60)] == [shadow]


def test_annotation_chooses_starts_by_the_models_scorer_in_coding_gene_mode_only(tiny_model_dir):
    """Without fitted weights each coding gene takes its ORF's longest start; with them (config
    `start_weights`, as train.py saves them) the start they score highest."""
    model, tokenizer = steered_model(tiny_model_dir)
    records = [("c", random_dna(4000, seed=31))]
    options = AnnotationOptions(
        window_size=2000, overlap=500, min_coding_length=60, max_new_tokens=60, long_orfs=0
    )
    genes, _, stats = annotate_records(model, tokenizer, records, options, progress=False)
    kept, _, same = annotate_records(
        model, tokenizer, records, replace(options, choose_starts=False), progress=False
    )
    coding = [g for g in genes["c"] if g.transcripts and g.transcripts[0].cds]
    assert stats.stitch.moved_starts > 0 and f"{stats.stitch.moved_starts} starts moved" in stats.summary()
    assert all(pick_start(g, records[0][1], GeneticCode(11)) == g for g in coding)
    assert same.stitch.moved_starts == 0 and kept != genes
    assert AnnotationOptions("unicellular").chooses_starts and AnnotationOptions().chooses_starts
    assert not AnnotationOptions(coding_genes=False).chooses_starts
    assert not AnnotationOptions(constraints=False).chooses_starts

    model.config.start_weights = {"codon ATG": 2.0, "log rank": -0.5}
    scored, _, _ = annotate_records(model, tokenizer, records, options, progress=False)
    weights = start_weight_vector(model.config.start_weights)
    coding = [g for g in scored["c"] if g.transcripts and g.transcripts[0].cds]
    assert all(pick_start(g, records[0][1], GeneticCode(11), weights, 60) == g for g in coding)
    assert scored != genes


def test_long_orfs_join_the_calls_and_win_only_when_much_longer():
    """An ORF no window wrote is a gene unless a call explains it: one with its stop, or one overlapping it
    that is more than 1 / LONG_ORF_HANDICAP of its length; it is kept with no score."""
    windows = tile("c", random_dna(20_000, seed=9), size=20_000, overlap=0)
    inside = coding_gene(1501, 1800, "-")  # a short call inside a long ORF of the other strand
    rival = coding_gene(5101, 6000, "+")  # 900 bp: more than 1200 / 1.5
    written = coding_gene(9001, 10_200, "-")  # the call of the ORF below, with another start
    # A spliced call the grammar closed without a CDS, ending at the last ORF's stop: it explains nothing.
    no_cds = Gene(15_001, 15_900, "+", "gene", (Transcript("mRNA", ((15_001, 15_200), (15_301, 15_900))),))
    calls = [inside, rival, written, no_cds]
    orfs = [
        coding_gene(1001, 2200, "+"),  # displaces `inside`
        coding_gene(5001, 6200, "-"),  # loses to `rival`
        coding_gene(9001, 10_500, "-"),  # same stop as `written`: already called
        coding_gene(15_001, 15_900, "+"),  # only `no_cds` there
    ]
    predictions = place(windows[0], 0, [g.shift(-1) for g in calls], [-0.5] * 4)
    stats = StitchStats()
    kept = stitch(predictions, windows, stats, max_overlap=60, long_orfs=orfs)
    assert [p.gene for p in kept] == [orfs[0], rival, written, orfs[3], no_cds]
    assert [p.windows for p in kept] == [(), (0,), (0,), (), (0,)] and stats.long_orfs == 2
    assert stats.overlapping == 1  # `inside`; the ORF that lost was never a call
    assert AnnotationOptions().long_orf_bp == AnnotationOptions("plants").long_orf_bp == 600
    assert AnnotationOptions(coding_genes=False).long_orf_bp == 0


def spliced(*exons: tuple[int, int]) -> Gene:
    """A + strand coding gene whose exons are its CDS chain."""
    return Gene(
        exons[0][0], exons[-1][1], "+", "gene", (Transcript("mRNA", exons, (exons[0][0], exons[-1][1])),)
    )


def test_a_spliced_call_weighs_its_coding_bases_against_a_long_orf():
    """The longer of two overlapping coding genes is the one with more coding bases, not the longer span: a
    chain of two short exons around a long intron loses to the long ORF inside it, a chain of long exons
    wins (a small model's eukaryote calls are such chains; on held-out S. pombe the long ORFs they hid
    raised exon F1 from 0.169 to 0.248)."""
    windows = tile("c", random_dna(20_000, seed=9), size=20_000, overlap=0)
    sparse = spliced((1001, 1100), (2401, 2500))  # 200 coding bases over 1,500 bp
    dense = spliced((5001, 5500), (5561, 6000))  # 940 coding bases over 1,000 bp
    orfs = [coding_gene(1201, 2100, "-"), coding_gene(5101, 5900, "-")]  # 900 and 800 bp
    predictions = place(windows[0], 0, [g.shift(-1) for g in (sparse, dense)], [-0.5] * 2)
    kept = stitch(predictions, windows, StitchStats(), max_overlap=60, long_orfs=orfs)
    assert [p.gene for p in kept] == [orfs[0], dense]


def test_stitched_coding_genes_keep_the_minimum_length_two_thirds_of_it_at_a_sequence_end():
    """The decoder holds whole genes to `min_coding_length`; genes joined from window pieces and the pieces
    of a gene at a sequence end (exempt while decoding) meet it after stitching."""
    windows = tile("c", random_dna(1300, seed=10), size=1000, overlap=700)  # 1..1000 and 301..1300
    edge = replace(coding_gene(1, 650, "+"), open_left=True)  # kept at 900 * 2 // 3 = 600
    sliver = replace(coding_gene(1271, 1300, "-"), open_left=True)  # 30 bp: a codon or two of a gene
    joined = coding_gene(251, 1050, "-")  # 800 bp, only ever written as two pieces
    predictions = place(windows[0], 0, [g.shift(-1) for g in (edge, joined.clip(1, 1000))], [-0.5] * 2)
    predictions += place(windows[1], 1, [g.shift(-301) for g in (joined.clip(301, 1300), sliver)], [-0.5] * 2)
    stats = StitchStats()
    kept = stitch(predictions, windows, stats, min_coding_length=900)
    assert [p.gene for p in kept] == [edge] and stats.short_genes == 2 and stats.joined == 1
    assert [p.gene for p in stitch(predictions, windows)] == [edge, joined, sliver]
    assert AnnotationOptions().stitch_min_length == AnnotationOptions("plants").stitch_min_length == 300
    assert AnnotationOptions(coding_genes=False).stitch_min_length == 0


def test_a_spliced_coding_gene_meets_the_minimum_length_with_its_coding_bases():
    """The decoder holds a spliced gene's span to `min_coding_length`, stitching its coding bases: on held-out
    S. pombe 24 of a 25-minute model's 25 spliced coding genes spanned 430-2,963 bp around < 200 coding bases."""
    windows = tile("c", random_dna(4000, seed=12), size=4000, overlap=0)
    sparse = spliced((101, 190), (1101, 1200))  # 190 coding bases over 1,100 bp
    dense = spliced((2001, 2200), (2301, 2430))  # 330 coding bases
    predictions = place(windows[0], 0, [g.shift(-1) for g in (sparse, dense)], [-0.5] * 2)
    stats = StitchStats()
    assert [p.gene for p in stitch(predictions, windows, stats, min_coding_length=300)] == [dense]
    assert stats.short_genes == 1


def test_a_model_that_writes_nothing_still_gets_the_long_orfs_unscored(tiny_model_dir):
    model, tokenizer = annotate.load_model(str(tiny_model_dir))
    orf = "ATG" + "GCC" * 400 + "TAA"  # CCG / CGC in the other frames: no start codon
    flank = "TTAA" * 500  # a stop in every frame
    dna = flank + orf + flank
    options = AnnotationOptions(window_size=3000, overlap=500, max_new_tokens=1)
    genes, _, stats = annotate_records(model, tokenizer, [("c", dna)], options, progress=False)
    assert genes["c"] == [coding_gene(2001, 2000 + len(orf), "+")]
    assert stats.scores["c"] == [None] and stats.stitch.long_orfs == 1
    assert "1 long ORFs added" in stats.summary()
    none, _, _ = annotate_records(
        model, tokenizer, [("c", dna)], replace(options, long_orfs=0), progress=False
    )
    assert none["c"] == []


def test_the_overlap_limit_is_on_in_coding_gene_mode_only():
    assert AnnotationOptions("prokaryotes").gene_overlap_limit == 60
    assert AnnotationOptions("unicellular").gene_overlap_limit == 60
    assert AnnotationOptions("unicellular", coding_genes=False).gene_overlap_limit is None
    assert AnnotationOptions("plants", coding_genes=True, max_gene_overlap=0).gene_overlap_limit == 0


# ---------------------------------------------------------------- options


REQUIRED = ["--model", "m", "--fasta", "g.fa", "--out", "o.gff3"]


def test_annotate_cli_defaults_and_flags_are_the_annotation_options():
    assert annotate.parse_args(REQUIRED).options == AnnotationOptions()
    flags = ["--taxon", "plants", "--batch_size", "2", "--num_beams", "3", "--no_constraints"]
    flags += [
        "--genetic_code",
        "4",
        "--no-coding_genes",
        "--min_coding_length",
        "60",
        "--track_weight",
        "0.5",
    ]
    flags += ["--no-both_strands", "--window_size", "700", "--overlap", "100", "--max_new_tokens", "9"]
    flags += ["--no_choose_starts", "--long_orfs", "900"]
    assert annotate.parse_args([*REQUIRED, *flags]).options == AnnotationOptions(
        "plants",
        window_size=700,
        overlap=100,
        batch_size=2,
        num_beams=3,
        max_new_tokens=9,
        constraints=False,
        genetic_code=4,
        coding_genes=False,
        min_coding_length=60,
        track_weight=0.5,
        both_strands=False,
        choose_starts=False,
        long_orfs=900,
    )


def test_options_resolve_the_taxon_defaults_as_before():
    prokaryotes, plants = AnnotationOptions(), AnnotationOptions("plants")
    assert (prokaryotes.window_bp, prokaryotes.overlap_bp) == (9000, 3000)
    assert (prokaryotes.translation_table, prokaryotes.spliced_genes, prokaryotes.beams) == (11, False, 1)
    assert (plants.window_bp, plants.overlap_bp, plants.translation_table, plants.spliced_genes) == (
        45000,
        15000,
        1,
        True,
    )
    assert plants.coding_genes and plants.beams == 4 and replace(plants, num_beams=1).beams == 1
    assert replace(plants, taxon=None) == prokaryotes  # None stays "the taxon's default"
    assert (prokaryotes.taxon, prokaryotes.taxon_name) == (None, "prokaryotes")
    given = AnnotationOptions("plants", window_size=600, genetic_code=11, coding_genes=False)
    assert (given.window_bp, given.overlap_bp, given.translation_table, given.coding_genes) == (
        600,
        200,
        11,
        False,
    )


def test_the_window_defaults_to_the_one_the_model_was_trained_on(tiny_model_dir):
    trained = SimpleNamespace(training_window_bp=700)
    assert AnnotationOptions().for_model(trained).window_bp == 700
    assert AnnotationOptions(window_size=900).for_model(trained).window_bp == 900  # given: kept
    assert AnnotationOptions().for_model(SimpleNamespace()).window_bp == 9000  # an older model: the taxon's
    # The taxon the model was trained on, when it was one, sets the genetic code and modes; a given one wins.
    yeast = AnnotationOptions().for_model(SimpleNamespace(training_taxa=["unicellular"]))
    assert (yeast.taxon, yeast.translation_table, yeast.spliced_genes, yeast.window_bp) == (
        "unicellular",
        1,
        True,
        22_500,
    )
    mixed = SimpleNamespace(training_taxa=["plants", "unicellular"])
    assert AnnotationOptions().for_model(mixed).taxon_name == "prokaryotes"
    assert (
        AnnotationOptions("plants").for_model(SimpleNamespace(training_taxa=["unicellular"])).taxon
        == "plants"
    )
    with pytest.raises(OptionError, match="overlap: 800 bp must be below the window size \\(700 bp\\)"):
        AnnotationOptions(overlap=800).for_model(trained)
    # End to end: annotation tiles at the model's window.
    model, tokenizer = annotate.load_model(str(tiny_model_dir))
    model.config.training_window_bp = 700
    options = AnnotationOptions(max_new_tokens=4, both_strands=False)
    _, _, stats = annotate_records(
        model, tokenizer, [("c", random_dna(2000, seed=8))], options, progress=False
    )
    assert stats.windows == len(window_starts(2000, 700, 233))


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"num_beams": 0}, "num_beams: expected an integer >= 1, got 0"),
        ({"batch_size": 2.5}, "batch_size: expected an integer >= 1, got 2.5"),
        ({"window_size": "600"}, "window_size: expected an integer >= 1, got '600'"),
        ({"overlap": -1}, "overlap: expected an integer >= 0, got -1"),
        ({"max_new_tokens": True}, "max_new_tokens: expected an integer >= 1, got True"),
        ({"min_coding_length": 0}, "min_coding_length: expected an integer >= 1, got 0"),
        ({"track_weight": float("nan")}, "track_weight: expected a number >= 0, got nan"),
        ({"genetic_code": 99}, "genetic_code: expected an NCBI table, got 99"),
        ({"taxon": "bacteria"}, "taxon: expected one of prokaryotes, "),
        ({"constraints": "no"}, "constraints: expected True or False, got 'no'"),
        ({"coding_genes": 1}, "coding_genes: expected True or False, got 1"),
        ({"window_size": 600, "overlap": 600}, "overlap: 600 bp must be below the window size (600 bp)"),
        ({"taxon": "vertebrates", "overlap": 90_000}, "overlap: 90000 bp must be below the window size"),
    ],
)
def test_options_refuse_a_bad_value_in_one_line(option, message):
    with pytest.raises(OptionError) as refused:
        AnnotationOptions(**option)
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)
    assert isinstance(refused.value, ValueError) and isinstance(refused.value, InputError)


# ---------------------------------------------------------------- the tiny model end to end


@pytest.fixture
def small_fasta(tmp_path):
    contigs = {
        "ctg1": random_dna(1400, seed=7) + "N" * 200 + random_dna(300, seed=8),
        "ctg2": random_dna(250, seed=9),
    }
    return write_text(tmp_path / "g.fa", "".join(f">{k}\n{v}\n" for k, v in contigs.items())), contigs


def test_annotate_cli_writes_valid_gff3_with_possible_genes(tiny_model_dir, small_fasta, tmp_path, capsys):
    fasta, contigs = small_fasta
    out = tmp_path / "pred.gff3"
    argv = ["--model", str(tiny_model_dir), "--fasta", str(fasta), "--out", str(out), "--quiet"]
    assert annotate.main([*argv, "--window_size", "600", "--overlap", "150", "--max_new_tokens", "24"]) == 0
    assert "genes (+" in capsys.readouterr().out
    text = out.read_text()
    assert text.startswith("##gff-version 3") and "##sequence-region ctg2 1 250" in text
    if shutil.which("gt"):
        check = subprocess.run(["gt", "gff3validator", str(out)], capture_output=True, text=True, timeout=60)
        assert check.returncode == 0 and not check.stderr.strip(), check.stderr
    if "\tgene\t" in text:  # a random model may predict nothing
        genes = read_gff(out, {k: len(v) for k, v in contigs.items()}).genes_by_seqid
        for seqid, seq_genes in genes.items():
            for gene in seq_genes:
                check_biology(gene.shift(-1), contigs[seqid].upper(), table=11)


def test_track_weight_guides_the_coordinates_of_a_model_with_a_track_head(
    tmp_path, gff_tokenizer, small_fasta
):
    import init_model
    from annotation.constraints import TrackEvidence

    gff_tokenizer.save_pretrained(tmp_path / "tokenizer")
    size = [
        "--hidden_size",
        "32",
        "--num_hidden_layers",
        "1",
        "--num_attention_heads",
        "2",
        "--intermediate_size",
    ]
    size += ["64", "--decoder_layers", "1", "--num_experts", "2", "--use_moe", "--track_loss_weight", "1"]
    size += ["--track_conv_channels", "8"]  # the head with its convolutions over the bases
    model = tmp_path / "model"
    assert init_model.main(["--save_dir", str(model), "--tokenizer", str(tmp_path / "tokenizer"), *size]) == 0
    fasta, contigs = small_fasta
    argv = [
        "--model",
        str(model),
        "--fasta",
        str(fasta),
        "--quiet",
        "--window_size",
        "600",
        "--overlap",
        "150",
    ]
    argv += ["--max_new_tokens", "24", "--min_coding_length", "60"]
    scored = []  # (in this process: --workers 1, where the spy sees the calls)
    with patch.object(
        TrackEvidence, "orf_scores", autospec=True, side_effect=TrackEvidence.orf_scores
    ) as spy:
        for weight in ("0", "5"):
            out = tmp_path / f"pred{weight}.gff3"
            assert annotate.main([*argv, "--out", str(out), "--track_weight", weight, "--workers", "1"]) == 0
            scored.append(spy.call_count)
            if shutil.which("gt"):
                check = subprocess.run(["gt", "gff3validator", str(out)], capture_output=True, text=True)
                assert check.returncode == 0, check.stderr
            for seqid, genes in read_gff(
                out, {k: len(v) for k, v in contigs.items()}, allow_empty=True
            ).genes_by_seqid.items():
                for gene in genes:
                    check_biology(gene.shift(-1), contigs[seqid].upper(), table=11)
    assert scored[0] == 0 and scored[1] > 0  # the evidence is read only when it weighs something

    # The track as a person can look at it: coding probability per base and strand, as bedGraph, also from
    # forked workers. (And on CPU annotate.py runs one torch thread a process: the workers are the parallelism.)
    track = tmp_path / "coding.bedgraph"
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        assert (
            annotate.main([*argv, "--out", str(tmp_path / "p.gff3"), "--track", str(track), "--workers", "2"])
            == 0
        )
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    sections = track.read_text().split("track type=bedGraph")[1:]
    assert [s.splitlines()[0] for s in sections] == [
        ' name="GFF-MoE coding probability +"',
        ' name="GFF-MoE coding probability -"',
    ]
    for section in sections:
        rows = [line.split("\t") for line in section.splitlines()[1:]]
        assert all(0 <= float(value) <= 1 for _, _, _, value in rows)
        for (
            seqid,
            sequence,
        ) in contigs.items():  # every base of a window exactly once; the N run is no window's
            spans = [(int(a), int(b)) for name, a, b, _ in rows if name == seqid]
            covered = {base for a, b in spans for base in range(a, b)}
            assert sum(b - a for a, b in spans) == len(covered)
            assert covered == {i for i in range(len(sequence)) if sequence[i] != "N"}


def test_hints_reach_the_encoder_of_the_windows_they_touch(tiny_model_dir, small_fasta, tmp_path, capsys):
    fasta, contigs = small_fasta
    hints = write_text(
        tmp_path / "hints.gff3",
        "##gff-version 3\n"
        "ctg1\tev\tgene\t101\t400\t.\t-\t.\tID=h1\n"
        "ctg1\tev\tCDS\t101\t400\t.\t-\t0\tParent=h1\n"
        "ctg2\tev\tweird_gene\t5\t50\t.\t+\t.\tID=h2\n",
    )
    sources = []  # (first base of the window, encoder input ids) of every generate call

    def recording_model(*args, **kwargs):
        model, tokenizer = load_model(*args, **kwargs)
        generate = model.generate

        def record(**inputs):
            sources.extend(inputs["input_ids"].tolist())
            return generate(**inputs)

        model.generate = record
        return model, tokenizer

    load_model = annotate.load_model
    out = tmp_path / "pred.gff3"
    argv = ["--model", str(tiny_model_dir), "--fasta", str(fasta), "--out", str(out), "--quiet"]
    argv += ["--window_size", "600", "--overlap", "150", "--max_new_tokens", "16", "--batch_size", "1"]
    argv += ["--workers", "1"]  # the recording model records in this process
    with patch.object(annotate, "load_model", recording_model):
        assert annotate.main([*argv, "--hints", str(hints)]) == 0
    captured = capsys.readouterr()
    assert "hints: 2 genes in file; 2 kept" in captured.err and "1 hints unreadable" in captured.out
    assert "annotating as prokaryotes: 600 bp windows overlapping 150 bp, 1 beam(s), both strands, genetic code 11, coding genes snapped to ORFs of >= 300 bp" in captured.err  # fmt: skip
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    hint = read_gff(hints).genes_by_seqid["ctg1"][0].shift(-1)  # window 0 starts at the contig's first base
    expected = tokens_to_ids(tokenizer, ["[HIT]", *encode([hint], NumberCoordinates()), "[SEP]"])
    hit = tokenizer.convert_tokens_to_ids("[HIT]")
    first_window = [i for i in sources[0] if i != tokenizer.pad_token_id]
    assert first_window[-len(expected) :] == expected
    # The window's reverse complement (read for the - strand) carries the hint mirrored.
    first_length = len(tile("ctg1", contigs["ctg1"], 600, 150)[0].sequence)
    mirrored = tokens_to_ids(
        tokenizer, ["[HIT]", *encode([hint.mirror(first_length)], NumberCoordinates()), "[SEP]"]
    )
    assert [i for i in sources[1] if i != tokenizer.pad_token_id][-len(mirrored) :] == mirrored
    # Windows the hint does not touch (and the unreadable hint's) read the DNA alone, as without hints.
    assert sum(hit in ids for ids in sources) == 2 and len(sources) == 2 * 5
    if shutil.which("gt"):
        check = subprocess.run(["gt", "gff3validator", str(out)], capture_output=True, text=True, timeout=60)
        assert check.returncode == 0 and not check.stderr.strip(), check.stderr


def steered_model(model_dir, introns: bool = False):
    """The tiny random model steered towards coding genes (spliced ones with `introns`), so that the
    constraints have work."""
    model, tokenizer = annotate.load_model(str(model_dir))
    vocab = tokenizer.get_vocab()
    bias = {"<gene>": 8, "<+>": 8, "<->": 8, "<direct>": 8, "<cds_all>": 12, "<cds>": 12, "<eos>": -8}
    if introns:
        bias |= {"<introns>": 14, "<mRNA>": 8}
    with torch.no_grad():
        for token, value in bias.items():
            model.lm_head.bias[vocab[token]] += value
    return model, tokenizer


def test_eukaryote_coding_genes_are_whole_spliced_orfs_by_default(tiny_model_dir):
    """Outside prokaryotes coding-gene mode is on by default and holds each coding gene's exon chain, not its
    span, to an ORF: every transcript of a coding gene is its CDS chain, start to stop, with canonical introns."""
    model, tokenizer = steered_model(tiny_model_dir, introns=True)
    records = [("c", random_dna(3000, seed=41))]
    # (a random model's exons are short: 60 coding bases, not the default 300, for it to keep some)
    options = AnnotationOptions("unicellular", window_size=1000, max_new_tokens=60, min_coding_length=60)
    assert options.coding_genes and options.spliced_genes and options.beams == 4
    genes, _, _ = annotate_records(model, tokenizer, records, options, progress=False)
    dna = "N" + records[0][1]  # 1-based, as annotate_records writes
    coding = [g for g in genes["c"] if g.transcripts and g.transcripts[0].cds and g.start > 1]
    for gene in coding:
        check_biology(gene, dna, 1)
        assert all(t.cds == (gene.start, gene.end) and t.cds_segments() == t.exons for t in gene.transcripts)
    assert len(coding) >= 3 and any(len(g.transcripts[0].exons) > 1 for g in coding)


def test_soft_masked_eukaryote_with_long_n_runs_annotates_without_loss(tiny_model_dir, tmp_path):
    """Lower case (soft-masking) reads as upper case; every base is in a window or in a skipped N run."""
    model, tokenizer = steered_model(tiny_model_dir)
    masked = (
        random_dna(700, seed=31) + random_dna(800, seed=32).lower() + "N" * 1000 + random_dna(900, seed=33)
    )
    edge_gaps = "n" * 300 + random_dna(250, seed=34).lower() + "N" * 150 + "NNACGTN" + "N" * 40
    fasta = write_text(tmp_path / "euk.fa", f">chrA\n{masked}\n>chrB\n{edge_gaps}\n")
    upper = write_text(tmp_path / "upper.fa", f">chrA\n{masked.upper()}\n>chrB\n{edge_gaps.upper()}\n")
    options = AnnotationOptions("unicellular", window_size=600, overlap=150, max_new_tokens=24)
    genes, lengths, stats = annotate.annotate_genome(model, tokenizer, fasta, options, progress=False)
    upper_genes, _, upper_stats = annotate.annotate_genome(model, tokenizer, upper, options, progress=False)
    assert genes == upper_genes and stats.scores == upper_stats.scores
    assert stats.sequence_bases == sum(lengths.values()) == len(masked) + len(edge_gaps)
    assert stats.gap_bases == 1000 + 300 + 152  # runs of >= 100 N only: the last 41 are read
    assert stats.covered_bases + stats.gap_bases == stats.sequence_bases
    for seqid, sequence in (("chrA", masked), ("chrB", edge_gaps)):
        for gene in genes[seqid]:  # no gene reaches into a gap
            assert "N" * 100 not in sequence[gene.start - 1 : gene.end].upper()
    assert f"{stats.covered_bases:,} of {stats.sequence_bases:,} bp in windows" in stats.summary()


def test_both_strands_reads_every_window_and_its_reverse_complement(tiny_model_dir):
    model, tokenizer = steered_model(tiny_model_dir)
    windows = [Window("c", 0, random_dna(600, seed=seed)) for seed in (21, 22)]
    flipped = [Window("c", 0, reverse_complement(w.sequence)) for w in windows]
    options = AnnotationOptions(coding_genes=True, min_coding_length=60, max_new_tokens=40)
    one_read, one_scores, _ = WindowAnnotator(model, tokenizer, replace(options, both_strands=False))(
        windows + flipped
    )
    both, scores, _ = WindowAnnotator(model, tokenizer, options)(windows)
    for i, window in enumerate(windows):
        j = len(windows) + i
        mirrored = [g.mirror(len(window.sequence)) for g in one_read[j]]
        assert (both[i], scores[i]) == merge_reads(one_read[i], one_scores[i], mirrored, one_scores[j])
        for gene in both[i]:  # in the window's own coordinates: possible genes of its DNA, either strand
            check_biology(gene, window.sequence, table=11)
    assert any(g.strand == "-" and g.transcripts[0].cds for genes in both for g in genes)


def test_the_cpu_encoder_pass_window_by_window_equals_the_padded_batch(tiny_model_dir):
    """On CPU the annotator encodes each window unpadded (bounded attention memory); the decoder must see what
    one padded batched pass gives, padding rows aside."""
    model, tokenizer = annotate.load_model(str(tiny_model_dir))
    sources = [encode_source(tokenizer, random_dna(n, seed=n)) for n in (600, 173, 421)]
    length = max(len(s["input_ids"]) for s in sources)
    inputs = {
        key: torch.tensor([s[key] + [fill] * (length - len(s[key])) for s in sources])
        for key, fill in (
            ("input_ids", tokenizer.pad_token_id),
            ("attention_mask", 0),
            ("token_offsets", (0, 0)),
        )
    }
    lengths = [len(s["input_ids"]) for s in sources]
    assert len(set(lengths)) == 3  # padding in every row but the longest
    with torch.no_grad():
        batched = model.get_encoder()(**inputs).last_hidden_state
        windowed = WindowAnnotator(model, tokenizer).encode(inputs, lengths)
    assert type(windowed).__name__ == "GffMoeEncoderOutput"  # where the decoder caches its context
    assert torch.equal(windowed.token_offsets, inputs["token_offsets"])
    for row, n in enumerate(lengths):
        torch.testing.assert_close(
            windowed.last_hidden_state[row, :n], batched[row, :n], atol=1e-5, rtol=1e-4
        )
        assert not windowed.last_hidden_state[row, n:].any()


def test_merging_two_reads_keeps_one_copy_of_each_locus():
    def gene(start, end, strand="+"):
        return Gene(start, end, strand, transcripts=(Transcript(DIRECT, ((start, end),), (start, end)),))

    forward = [gene(0, 299), gene(150, 449), gene(500, 799, "-")]
    reverse = [gene(600, 899), gene(510, 790, "-")]
    genes, scores = merge_reads(forward, [-1.0, -0.5, -2.0], reverse, [-3.0, -0.1])
    # 500..799 - and 510..790 - are one locus: the better-scored copy stays. 0..299 and 150..449 overlap
    # by half, but they are one read's own genes and both stay; 600..899 + has no rival on its strand.
    kept = [(g.start, g.end, g.strand, s) for g, s in zip(genes, scores, strict=True)]
    assert kept == [(0, 299, "+", -1.0), (150, 449, "+", -0.5), (510, 790, "-", -0.1), (600, 899, "+", -3.0)]


def test_a_record_cut_by_the_token_budget_keeps_only_its_whole_transcripts(tiny_model_dir):
    model, tokenizer = annotate.load_model(str(tiny_model_dir))
    annotator, scheme = WindowAnnotator(model, tokenizer), NumberCoordinates(600)
    first = ["<gene>", *scheme.encode(10), *scheme.encode(99), "<+>", "<direct>", "<cds_all>"]
    last = ["<gene>", *scheme.encode(300), *scheme.encode(403), "<->", "<mRNA>", "<cds_all>", "<ph1>"]

    def records(tokens):
        ids = tokens_to_ids(tokenizer, ["<bos>", "[ATT]", *tokens])
        genes, _, errors = annotator._records(ids, [-0.5] * (len(ids) - 1), 1, scheme)
        return [(g.start, g.end, [(t.type, t.phase) for t in g.transcripts]) for g in genes], errors

    whole_first = (10, 99, [("direct", 0)])
    # Cut before its phase token, the last record reads as a complete phase-0 transcript: it is dropped.
    assert records([*first, *last[:-1]]) == ([whole_first], 1)
    # A transcript followed by another one is whole: the record keeps it.
    assert records([*first, *last, "<mRNA>", "<span>"]) == ([whole_first, (300, 403, [("mRNA", 1)])], 0)
    # Its score is the mean log-probability of the tokens decoded, not of the dropped tail.
    ids = tokens_to_ids(tokenizer, ["<bos>", "[ATT]", *last, "<mRNA>", "<span>"])
    _, scores, _ = annotator._records(ids, [-1.0] * (len(ids) - 3) + [-9.0, -9.0], 1, scheme)
    assert scores == [-1.0]
    # With <eos> the records end where the model ended them.
    assert records([*first, *last[:-1], "<eos>"]) == ([whole_first, (300, 403, [("mRNA", 0)])], 0)


# 2 beams, 40 tokens: a window's returned beams end before the search does (IndexError before the fix)
@pytest.mark.parametrize(("num_beams", "budget"), [(1, 40), (2, 40), (4, 24)])
def test_annotate_genome_gives_possible_genes_in_contig_coordinates(
    tiny_model_dir, small_fasta, num_beams, budget
):
    model, tokenizer = steered_model(tiny_model_dir)
    fasta, contigs = small_fasta
    options = AnnotationOptions(window_size=600, overlap=150, max_new_tokens=budget, num_beams=num_beams)
    genes, lengths, stats = annotate.annotate_genome(model, tokenizer, fasta, options, progress=False)
    assert lengths == {k: len(v) for k, v in contigs.items()}
    expected = [w for seqid, dna in contigs.items() for w in tile(seqid, dna, 600, 150)]
    assert stats.windows == len(expected) and stats.bases == sum(len(w.sequence) for w in expected)
    for seqid, seq_genes in genes.items():
        assert len(stats.scores[seqid]) == len(seq_genes)
        assert all(math.isfinite(s) and s <= 0 for s in stats.scores[seqid])
        assert all(1 <= g.start <= g.end <= lengths[seqid] for g in seq_genes)
        for gene in seq_genes:  # constrained decoding + stitching: every gene is biologically possible
            check_biology(gene.shift(-1), contigs[seqid].upper(), table=11)
    assert any(t.cds for gs in genes.values() for g in gs for t in g.transcripts)


@pytest.fixture(scope="module")
def memorised_model():
    """A tiny model that learned two targets ending in <eos> after 10 and 8 tokens (tests/test_modeling.py)."""
    return memorised(tiny_model(seed=3, initializer_range=0.05), source_batch(), torch.tensor(TARGET))


@pytest.mark.parametrize("num_beams", [1, 2, 4])
def test_token_log_probs_are_those_of_the_generated_tokens(memorised_model, num_beams):
    """Regression: beam search runs more steps than its returned beams keep (here they end early, at different
    lengths), so beam_indices has fewer steps than scores. Each token's log-probability equals that of a
    teacher-forced forward pass (no logits processors here); NaN exactly after a returned beam's <eos>."""
    model, eos = memorised_model, memorised_model.config.eos_token_id
    out = model.generate(
        **source_batch(),
        num_beams=num_beams,
        max_new_tokens=20,
        do_sample=False,
        eos_token_id=eos,
        output_scores=True,
        return_dict_in_generate=True,
    )
    log_probs = token_log_probs(out)
    generated = out.sequences[:, 1:]
    assert log_probs.shape == generated.shape
    until_eos = (generated == eos).long().cumsum(1) - (generated == eos).long() == 0
    assert until_eos.sum(1).tolist() == [10, 8]  # both learned targets, <eos> included
    with torch.no_grad():
        teacher_forced = model(**source_batch(), decoder_input_ids=out.sequences[:, :-1]).logits
    expected = teacher_forced.log_softmax(-1).gather(-1, generated[..., None])[..., 0]
    torch.testing.assert_close(log_probs[until_eos], expected[until_eos], atol=1e-4, rtol=1e-4)
    if num_beams > 1:
        assert out.beam_indices.shape[1] < len(out.scores)  # the case that raised IndexError
        assert torch.equal(log_probs.isnan(), ~until_eos)
        # length penalty 1: a beam's score is the mean log-probability of its tokens
        torch.testing.assert_close(log_probs.nanmean(1), out.sequences_scores, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------- bad input: one line, exit 2, no output


def run_bad(capsys, tmp_path, fasta, model="unused", out=None, extra=()):
    out = out or tmp_path / "out.gff3"
    code = annotate.main(["--model", str(model), "--fasta", str(fasta), "--out", str(out), "--quiet", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("annotate.py: error: ")
    assert not out.exists()
    return err[0]


def test_bad_inputs_fail_cleanly(tmp_path, capsys, small_fasta):
    empty = write_text(tmp_path / "empty.fa", "")
    assert "empty.fa" in run_bad(capsys, tmp_path, empty)
    bad = write_text(tmp_path / "bad.fa", ">c\nACGT\nACXT\n")
    assert "bad.fa:3" in run_bad(capsys, tmp_path, bad)
    fasta, _ = small_fasta
    not_a_model = tmp_path / "model"
    not_a_model.mkdir()
    assert "config.json" in run_bad(capsys, tmp_path, fasta, model=not_a_model)
    (not_a_model / "config.json").write_text('{"model_type": "bert"}')
    assert "not a GFF-MoE model" in run_bad(capsys, tmp_path, fasta, model=not_a_model)
    hints = write_text(tmp_path / "hints.gff3", "##gff-version 3\nchrZ\tx\tgene\t1\t9\t.\t+\t.\tID=a\n")
    assert "hints.gff3:2" in run_bad(capsys, tmp_path, fasta, extra=["--hints", str(hints)])
    assert "cannot write" in run_bad(capsys, tmp_path, fasta, out=tmp_path / "no" / "such" / "out.gff3")


# ---------------------------------------------------------------- streaming, precision


def assembly(long_bp: int, tiny: int) -> dict[str, str]:
    """A long contig, `tiny` small ones (as a fragmented metagenome assembly), an empty and an all-N record."""
    contigs = {"long": random_dna(long_bp, seed=40)}
    contigs |= {f"frag{i}": random_dna(30 + (i * 37) % 300, seed=100 + i) for i in range(tiny)}
    return contigs | {"empty": "", "gap": "N" * 250}


def gt_valid(path) -> None:
    if shutil.which("gt"):
        check = subprocess.run(["gt", "gff3validator", str(path)], capture_output=True, text=True, timeout=60)
        assert check.returncode == 0 and not check.stderr.strip(), check.stderr


def test_a_long_contig_and_many_tiny_ones_stream_in_full_batches_with_every_base_counted(
    tiny_model_dir, tmp_path, capsys
):
    model, tokenizer = steered_model(tiny_model_dir)
    contigs = assembly(6000, tiny=120)
    lengths = {seqid: len(sequence) for seqid, sequence in contigs.items()}
    options = AnnotationOptions(
        window_size=600, overlap=150, max_new_tokens=24, batch_size=8, min_coding_length=60
    )
    read = []  # seqids the annotation has pulled from the records so far

    def records():
        for seqid, sequence in contigs.items():
            read.append(seqid)
            yield seqid, sequence

    stats, out = AnnotationStats(), []
    spy = patch.object(WindowAnnotator, "__call__", autospec=True, side_effect=WindowAnnotator.__call__)
    with spy as calls:
        for contig in annotate_contigs(model, tokenizer, records(), options, stats, progress=False):
            # Streamed: a contig comes out while the records of one batch at most are read beyond it.
            assert len(read) - len(out) <= options.batch_size + 1
            out.append(contig)
    assert {c.seqid: c.length for c in out} == lengths and [c.seqid for c in out] == list(contigs)
    windows = [w for seqid, dna in contigs.items() for w in tile(seqid, dna, 600, 150)]
    # Batches run across contigs: the 120 small contigs fill them, none is a batch of its own.
    assert stats.windows == len(windows) and calls.call_count == math.ceil(len(windows) / options.batch_size)
    assert stats.sequence_bases == sum(lengths.values()) and stats.empty_sequences == ["empty"]
    assert stats.covered_bases + stats.gap_bases == stats.sequence_bases and stats.gap_bases == 250
    genes, scores = {c.seqid: c.genes for c in out}, {c.seqid: c.scores for c in out}
    assert len(genes["long"]) > 1 and sum(map(len, genes.values())) == sum(stats.strands.values())

    # The CLI writes the same genes, contig by contig, as one valid GFF3 with every sequence's region.
    fasta = write_text(tmp_path / "asm.fa", "".join(f">{k}\n{v}\n" for k, v in contigs.items()))
    gff3 = tmp_path / "asm.gff3"
    argv = ["--model", str(tiny_model_dir), "--fasta", str(fasta), "--out", str(gff3), "--quiet"]
    argv += ["--window_size", "600", "--overlap", "150", "--max_new_tokens", "24", "--batch_size", "8"]
    argv += ["--min_coding_length", "60"]
    with patch.object(annotate, "load_model", return_value=(model, tokenizer)):
        assert annotate.main(argv) == 0
    assert f"{stats.covered_bases:,} of {stats.sequence_bases:,} bp in windows" in capsys.readouterr().out
    assert gff3.read_text() == "".join(gff3_lines(genes, lengths, scores=scores))
    assert gff3.read_text().count("##sequence-region") == len(contigs) - 1  # the empty record has none
    gt_valid(gff3)


def test_an_interrupted_streaming_run_leaves_no_output(tiny_model_dir, small_fasta, tmp_path, capsys):
    fasta, _ = small_fasta
    out = tmp_path / "pred.gff3"
    calls = []

    def interrupted(self, windows, hints=None):
        calls.append(len(windows))
        if len(calls) == 5:  # ctg1's 4 windows are done: it is being written, to the temporary file
            assert [p.name for p in tmp_path.glob(".pred.gff3.*.tmp")] and not out.exists()
            raise KeyboardInterrupt
        return annotate_call(self, windows, hints)

    annotate_call = WindowAnnotator.__call__
    argv = ["--model", str(tiny_model_dir), "--fasta", str(fasta), "--out", str(out), "--quiet"]
    argv += ["--window_size", "600", "--overlap", "150", "--max_new_tokens", "8", "--batch_size", "1"]
    argv += ["--workers", "1"]  # the patched call runs in this process
    with patch.object(WindowAnnotator, "__call__", interrupted):
        assert annotate.main(argv) == 130
    assert "interrupted" in capsys.readouterr().err
    assert len(calls) == 5 and list(tmp_path.iterdir()) == [fasta]  # no output, no temporary file


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_annotates_on_cpu_and_writes_valid_gff3(tiny_model_dir, small_fasta, tmp_path, dtype):
    fasta, contigs = small_fasta
    out = tmp_path / "pred.gff3"
    loaded = []

    def recording_model(*args, **kwargs):
        model, tokenizer = load_model(*args, **kwargs)
        loaded.append(model)
        return model, tokenizer

    load_model = annotate.load_model
    argv = ["--model", str(tiny_model_dir), "--fasta", str(fasta), "--out", str(out), "--quiet"]
    argv += ["--window_size", "600", "--overlap", "150", "--max_new_tokens", "24", "--dtype", dtype]
    with patch.object(annotate, "load_model", recording_model):
        assert annotate.main(argv) == 0
    assert {p.dtype for p in loaded[0].parameters()} == {getattr(torch, dtype)}
    assert out.read_text().startswith("##gff-version 3")
    gt_valid(out)
    for seqid, genes in read_gff(
        out, {k: len(v) for k, v in contigs.items()}, allow_empty=True
    ).genes_by_seqid.items():
        for gene in genes:
            check_biology(gene.shift(-1), contigs[seqid].upper(), table=11)


def test_dtype_auto_is_bfloat16_on_a_cuda_device_that_has_it_else_float32():
    assert annotate.model_dtype("auto", "cpu") == torch.float32
    assert annotate.model_dtype("float16", "cpu") == torch.float16
    with patch.object(torch.cuda, "is_bf16_supported", return_value=True):
        assert annotate.model_dtype("auto", "cuda:1") == torch.bfloat16
    with patch.object(torch.cuda, "is_bf16_supported", return_value=False):
        assert annotate.model_dtype("auto", "cuda") == torch.float32
    assert annotate.parse_args(REQUIRED).dtype == "auto"
