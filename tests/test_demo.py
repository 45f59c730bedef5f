"""`make demo` (demo.py): the held-out split, the plot, the error paths, and a reduced demo end to end."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from huggingface_hub import ModelCard

import demo
from core.features import Gene, Transcript
from core.orfs import coding_gene
from dataset_builder.windows import GeneClusters
from genome_io.baselines import augustus_genes
from genome_io.bedgraph import read_bedgraph
from genome_io.fasta import fasta_lengths, read_fasta
from genome_io.gff import read_gff
from genome_io.gff3_writer import write_gff3
from genome_io.plot import match_kind, plot_gene_tracks
from scoring.metrics import Scores
from tests.fixtures.genomes import needs_augustus, random_dna, write_text, yeast_slice
from tokenization.codec import text_to_genes
from training.synthetic import spliced_gene_window

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def spliced_genome(tmp_path: Path, windows: int = 40, window_bp: int = 1500) -> tuple[Path, Path]:
    """One contig of `windows` synthetic windows, each with a planted spliced coding gene (1-4 canonical
    introns, either strand: `training.synthetic.spliced_gene_window`), as FASTA + GFF3 (gene -> mRNA ->
    exon + CDS)."""
    rng = random.Random(5)
    rows = [spliced_gene_window(rng, f"w{i}", window_bp) for i in range(windows)]
    sequence = "".join(row["sequence"] for row in rows)
    genes = [g.shift(i * window_bp) for i, row in enumerate(rows) for g in text_to_genes(row["target"]).genes]
    fasta = write_text(tmp_path / "spliced.fa", f">chr1\n{sequence}\n")
    gff = tmp_path / "spliced.gff3"
    write_gff3({"chr1": genes}, {"chr1": len(sequence)}, gff)
    return fasta, gff


def test_the_held_out_cut_moves_left_out_of_genes():
    """The demo cuts with the dataset builder's clean-boundary search (one implementation of the idea)."""
    genes = [coding_gene(100, 400, "+"), coding_gene(350, 900, "-"), coding_gene(2000, 2300, "+")]
    clean = GeneClusters(genes)
    assert clean.last_clean(1, 1500) == 1500  # intergenic: stays
    assert clean.last_clean(1, 700) == 100  # inside the 100-900 cluster: before its first gene
    assert clean.last_clean(1, 100) == 100  # a cut before a gene's first base splits nothing
    assert clean.last_clean(1, 2300) == 2000


def test_split_genome_holds_out_the_end_of_the_longest_sequence():
    records = [("short", random_dna(1000, seed=1)), ("long", random_dna(10_000, seed=2))]
    genes = {
        "short": [coding_gene(10, 300, "+")],
        "long": [coding_gene(1000, 2000, "+"), coding_gene(7500, 8400, "-"), coding_gene(9001, 9900, "+")],
    }
    train, train_genes, held_out = demo.split_genome(records, genes, holdout_bp=2000)
    assert (
        held_out.seqid == "long" and held_out.start == 7500 and held_out.end == 10_000
    )  # 8001 was inside a gene
    assert dict(train)["short"] == records[0][1]
    assert dict(train)["long"] + held_out.sequence == records[1][1]
    assert train_genes == {"short": genes["short"], "long": genes["long"][:1]}
    # Held-out genes are shifted onto the held-out sequence and keep their bases.
    assert [(g.start, g.end, g.strand) for g in held_out.genes] == [(1, 901, "-"), (1502, 2401, "+")]
    for original, shifted in zip(genes["long"][1:], held_out.genes, strict=True):
        assert (
            held_out.sequence[shifted.start - 1 : shifted.end]
            == records[1][1][original.start - 1 : original.end]
        )


def test_split_genome_refuses_a_holdout_that_leaves_too_little_to_train_on():
    with pytest.raises(demo.DemoError, match="lower --holdout_bp"):
        demo.split_genome([("chr", random_dna(5000))], {}, holdout_bp=4000)


def test_truncate_keeps_the_first_bases_in_file_order():
    records = [("a", "A" * 100), ("b", "C" * 100), ("c", "G" * 100)]
    assert demo.truncate(records, 150) == [("a", "A" * 100), ("b", "C" * 50)]


def test_prepare_genome_with_a_user_gff(tiny_genome, tmp_path, capsys):
    fasta, gff = tiny_genome
    work = tmp_path / "work"
    work.mkdir()
    genome = demo.prepare_genome(fasta, gff, tmp_path, work, holdout_bp=2000)
    held_out = genome.held_out
    # 4001 falls inside the spliced gene at 3001-4200: the cut moves to its first base.
    assert (held_out.seqid, held_out.start, held_out.end) == ("ctg1", 3001, 6000)
    train = dict(read_fasta(genome.train_fasta))
    assert len(train["ctg1"]) == 3000 and len(train["ctg2"]) == 3000
    train_genes = read_gff(genome.train_gff, {s: len(q) for s, q in train.items()}).genes_by_seqid
    assert [(g.start, g.end) for g in train_genes["ctg1"]] == [(101, 400), (1001, 1600)]
    assert [g.start for g in train_genes["ctg2"]] == [201]  # the tRNA stays in training
    reference = read_gff(genome.reference_gff).genes_by_seqid["ctg1"]
    assert reference == held_out.genes
    [spliced] = reference
    assert spliced.transcripts[0].exons == ((1, 300), (501, 1200)) and spliced.transcripts[0].cds == (
        101,
        1000,
    )
    assert dict(read_fasta(genome.heldout_fasta))["ctg1"] == held_out.sequence


def test_bad_user_gff_is_one_line_naming_file_and_line(tiny_genome, tmp_path, capsys):
    fasta, _ = tiny_genome
    bad = write_text(
        tmp_path / "bad.gff3", "##gff-version 3\nctg1\tsynth\tgene\t101\tNOT_A_NUMBER\t.\t+\t.\tID=g1\n"
    )
    assert demo.main(["--fasta", str(fasta), "--gff", str(bad), "--output_dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{bad}:2" in err


def test_missing_embedded_genome_says_how_to_run_on_your_own(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(demo, "DEFAULT_GENOME", ("pyrodigal.tests.data", "no_such_genome.fna.gz"))
    assert demo.main(["--output_dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no_such_genome.fna.gz" in err and "make demo DEMO_FASTA=genome.fa DEMO_GFF=genes.gff3" in err


def test_default_genome_ships_with_pyrodigal():
    path = demo.default_genome()
    assert path.is_file() and path.name.endswith(".fna.gz")


def test_match_kind_and_plot(tmp_path):
    reference = [coding_gene(100, 999, "+"), coding_gene(2000, 2900, "-")]
    assert match_kind(coding_gene(100, 999, "+"), reference) == "exact"
    assert match_kind(coding_gene(400, 999, "+"), reference) == "3' only"
    assert match_kind(coding_gene(2000, 2600, "-"), reference) == "3' only"  # a '-' gene stops at its start
    assert match_kind(coding_gene(100, 999, "-"), reference) == "not in reference"
    tracks = {"reference": reference, "model": [coding_gene(400, 999, "+")], "empty": []}
    path = plot_gene_tracks(tracks, 120_000, tmp_path / "genes.png", title="t", offset=5000)
    assert path.read_bytes()[:8] == PNG_MAGIC
    # A model's coding probability adds a lane (the picture grows by a row), NaN where no window read.
    coding = np.zeros((120_000, 2))
    coding[99:999, 0], coding[50_000:60_000] = 0.9, np.nan
    lane = plot_gene_tracks(tracks, 120_000, tmp_path / "lane.png", offset=5000, coding=coding)
    height = int.from_bytes(path.read_bytes()[20:24], "big")  # the PNG header's image height
    assert int.from_bytes(lane.read_bytes()[20:24], "big") > height


def test_spliced_genes_match_by_their_cds_chain_and_draw_their_introns(tmp_path):
    def spliced(exons, cds, strand="+"):
        return Gene(exons[0][0], exons[-1][1], strand, "gene", (Transcript("mRNA", exons, cds),))

    reference = [spliced(((1000, 1500), (2000, 2600), (3000, 4000)), (1200, 3800))]
    # UTRs may differ: the CDS chain decides (start, stop and every exon boundary between).
    assert match_kind(spliced(((1100, 1500), (2000, 2600), (3000, 3900)), (1200, 3800)), reference) == "exact"
    assert (
        match_kind(spliced(((1000, 1500), (2100, 2600), (3000, 4000)), (1200, 3800)), reference) == "3' only"
    )
    assert match_kind(spliced(((1000, 1500), (2000, 2600), (3000, 4000)), (1200, 3800), "-"), reference) == (
        "not in reference"
    )
    blank = plot_gene_tracks({"reference": []}, 5000, tmp_path / "blank.png")
    drawn = plot_gene_tracks({"reference": reference}, 5000, tmp_path / "spliced.png")
    assert drawn.read_bytes() != blank.read_bytes()
    # An intron is drawn as a line, not as an exon box: the pixel column at its middle is mostly background.
    image = plt.imread(drawn)
    axis_x = lambda bp: int(image.shape[1] * (0.05 + 0.93 * bp / 5000))  # noqa: E731  (about)
    dark = lambda column: int((image[:, column, :3].sum(axis=1) < 2.0).sum())  # noqa: E731
    assert dark(axis_x(1750)) < dark(axis_x(2300)) / 2


def test_a_eukaryote_demo_needs_a_genome(tmp_path, capsys):
    assert demo.main(["--taxon", "plants", "--output_dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "make demo TAXON=plants DEMO_FASTA=genome.fa" in err


def test_a_eukaryote_without_annotation_is_labelled_by_augustus(tmp_path, capsys):
    """Silver labels for a eukaryote: AUGUSTUS's calls (run once), the training part written as a GFF3."""
    needs_augustus()
    fasta = write_text(tmp_path / "yeast.fa", f">chr1\n{yeast_slice(30_000, 80_000)[0]}\n")
    work = tmp_path / "work"
    work.mkdir()
    finder = demo.gene_finder("unicellular")
    genome = demo.prepare_genome(fasta, None, tmp_path, work, holdout_bp=10_000, finder=finder)
    assert "AUGUSTUS (saccharomyces)'s own gene calls (silver labels)" in capsys.readouterr().out
    calls = augustus_genes(fasta, "saccharomyces")["chr1"]
    assert len(calls) > 10
    held_out = genome.held_out
    assert held_out.genes == [g.shift(1 - held_out.start) for g in calls if g.start >= held_out.start]
    train = read_gff(genome.train_gff, fasta_lengths(genome.train_fasta)).genes_by_seqid["chr1"]
    assert train == [g for g in calls if g.end < held_out.start]


@pytest.mark.slow
def test_reduced_eukaryote_demo_end_to_end(tmp_path):
    """make demo TAXON=unicellular's code path on planted spliced genes and their GFF3: the eukaryote
    constraints and window, AUGUSTUS and the eukaryote ORF floor beside GFF-MoE, the printed reproduction."""
    needs_augustus()
    fasta, gff = spliced_genome(tmp_path)
    out = tmp_path / "demo"
    command = [sys.executable, "demo.py", "--taxon", "unicellular", "--fasta", str(fasta), "--gff", str(gff)]
    command += ["--tiny", "--train_minutes", "0.1", "--holdout_bp", "9000", "--output_dir", str(out)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "beside AUGUSTUS (saccharomyces) and the ORF floor" in result.stdout
    [bake] = [line for line in result.stdout.splitlines() if "-m dataset_builder bake" in line]
    assert "--taxon unicellular" in bake
    summary = json.loads((out / "scores.json").read_text())
    assert (summary["taxon"], summary["labels"]) == ("unicellular", "gff")
    assert set(summary["scores"]) == {"GFF-MoE", "AUGUSTUS", "ORF floor"}
    reference = read_gff(out / "heldout_reference.gff3").genes_by_seqid["chr1"]
    assert len(reference) == 6 and all(len(g.transcripts[0].exons) > 1 for g in reference)
    assert summary["scores"]["AUGUSTUS"]["gene"]["reference"] == len(reference)
    assert (out / "genes.png").read_bytes()[:8] == PNG_MAGIC
    gff3 = out / "annotation.gff3"
    if shutil.which("gt"):
        check = subprocess.run(["gt", "gff3validator", str(gff3)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
    [line] = [line for line in result.stdout.splitlines() if "reproduce: python -m scoring" in line]
    reproduce = [sys.executable, *line.split("reproduce: python", 1)[1].split(), "--json"]
    assert "--augustus_species saccharomyces" in line
    again = json.loads(subprocess.run(reproduce, cwd=REPO, capture_output=True, text=True, check=True).stdout)
    assert again["prediction"] == summary["scores"]["GFF-MoE"]
    assert again["augustus"] == summary["scores"]["AUGUSTUS"]
    assert again["orf"] == summary["scores"]["ORF floor"]


@pytest.mark.slow
def test_reduced_demo_end_to_end(tmp_path):
    """The demo's own code path on a slice of the embedded genome, with a tiny model and budget."""
    out = tmp_path / "demo"
    command = [sys.executable, "demo.py", "--tiny", "--train_minutes", "0.1", "--genome_bp", "60000"]
    command += ["--holdout_bp", "8000", "--output_dir", str(out), "--track_loss_weight", "1"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "silver labels" in result.stdout
    for stage in range(1, demo.STAGES + 1):
        assert f"[{stage}/{demo.STAGES}]" in result.stdout
    # Training shows its progress as it goes, one line per log.
    assert re.search(r"\| step \d+/\d+  loss \d+\.\d+  [\d,]+ tokens/s  \d+m \d\ds left", result.stdout)

    # The model directory is Hub-ready: config, weights, code, tokenizer and a model card.
    model = out / "model"
    for name in ("config.json", "model.safetensors", "modeling_gffmoe.py", "tokenizer.json", "README.md"):
        assert (model / name).is_file(), name
    # Its card carries the held-out scores, as the demo measured them, beside the baselines.
    card = ModelCard.load(model / "README.md")
    held_out = [r for r in card.data.eval_results if r.dataset_split == "test"]
    assert {r.metric_type for r in held_out} >= {"gene_3prime_f1", "gene_exact_f1"}
    assert set(card.data.gffmoe["baselines"][held_out[0].dataset_name]) == {"Prodigal", "ORF floor"}

    gff3 = out / "annotation.gff3"
    assert gff3.read_text().startswith("##gff-version 3")
    if shutil.which("gt"):
        check = subprocess.run(["gt", "gff3validator", str(gff3)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr

    summary = json.loads((out / "scores.json").read_text())
    assert summary["labels"] == "prodigal (silver)"
    assert set(summary["scores"]) == {"GFF-MoE", "Prodigal", "ORF floor"}
    for scores in summary["scores"].values():
        assert set(scores) == set(Scores.levels())
    assert summary["scores"]["ORF floor"]["gene_3prime"]["reference"] == len(
        read_gff(out / "heldout_reference.gff3").genes_by_seqid.get(summary["held_out"]["seqid"], [])
    )
    assert (out / "genes.png").read_bytes()[:8] == PNG_MAGIC
    # With a track head the model's coding probability comes out too, both strands of every held-out base.
    coding = read_bedgraph(out / "coding.bedgraph", fasta_lengths(out / "heldout.fna"))
    assert not np.isnan(coding[summary["held_out"]["seqid"]]).any()

    # The printed reproduction command gives the same numbers.
    reproduce = [sys.executable, "-m", "scoring", "--reference", str(out / "heldout_reference.gff3")]
    reproduce += [
        "--prediction",
        str(gff3),
        "--fasta",
        str(out / "heldout.fna"),
        "--baseline",
        "orf",
        "--json",
    ]
    scored = subprocess.run(reproduce, cwd=REPO, capture_output=True, text=True, check=True)
    again = json.loads(scored.stdout)
    assert again["prediction"] == summary["scores"]["GFF-MoE"]
    assert again["orf"] == summary["scores"]["ORF floor"]
