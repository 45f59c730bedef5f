"""The model benchmarks still run and print their ratios (tiny sizes, one round: nothing here is timed)."""

import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from genome_io.gff3_writer import write_gff3
from tests.fixtures.genomes import shared_genome
from tests.fixtures.training import tiny_model_dir
from tokenization.codec import text_to_genes
from training.synthetic import orf_window

__all__ = ["tiny_model_dir"]  # fixtures used here

REPO = Path(__file__).resolve().parents[1]
TINY = ["--hidden", "32", "--layers", "1", "--heads", "2", "--experts", "4", "--repeats", "1"]
BENCHES = {
    "moe.py": (
        ["--tokens", "64", "--hidden", "32", "--expert_inner", "32", "--experts", "4", "8", "--repeats", "1"],
        "ratio vs dense",
    ),
    "train_step.py": (
        TINY + ["--batch", "2", "--source", "48", "--target", "8"],
        "GffMoe + track head / SwitchTransformers:",
    ),
    "generate.py": (TINY + ["--source", "32", "--new_tokens", "4"], "cache speed-up"),
    "long_window.py": (
        ["--lengths", "128", "256", "--reference_lengths", "128", "--hidden", "32", "--block", "64"],
        "memory growth",
    ),
}


@pytest.mark.parametrize("bench", BENCHES)
def test_model_benchmark_runs(bench):
    args, expected = BENCHES[bench]
    done = subprocess.run(
        [sys.executable, f"bench/{bench}", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert expected in done.stdout, done.stdout
    header = done.stdout.splitlines()[0]
    assert header.startswith("machine: ") and "thread(s)" in header and "device cpu" in header, header


def test_median_times_interleaves_rotates_and_takes_medians(monkeypatch):
    """Each round runs every candidate once, starting one later each time, and each gets its median."""
    sys.path.insert(0, str(REPO / "bench"))
    import _common

    now, calls = [0.0], []
    for clock in ("process_time", "perf_counter"):  # whichever the thread count picks
        monkeypatch.setattr(_common.time, clock, lambda: now[0])
    durations = {"a": iter([9, 1, 5, 2]), "b": iter([9, 7, 7, 100])}  # the warm-up run first

    def run(name):
        calls.append(name)
        now[0] += next(durations[name])

    times = _common.median_times({name: lambda name=name: run(name) for name in "ab"}, repeats=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert times == {"a": 2, "b": 7}  # medians: one slow round moves neither


def test_annotation_benchmark_times_a_trained_model_at_the_defaults_beside_pyrodigal(
    tmp_path, tiny_model_dir
):
    """bench/annotate.py on a stand-in for `make demo`'s output (the tiny model, a planted-ORF region and
    its reference): it prints both speeds, their ratio, the peak RSS and F1 beside Prodigal and the floor."""
    demo = tmp_path / "demo"
    shutil.copytree(tiny_model_dir, demo / "model")
    window = orf_window(random.Random(1), "region", 3000, (600, 900))
    (demo / "heldout.fna").write_text(f">region\n{window['sequence']}\n")
    genes = [gene.shift(1) for gene in text_to_genes(window["target"]).genes]  # 1-based
    write_gff3({"region": genes}, {"region": 3000}, demo / "heldout_reference.gff3")
    genome = tmp_path / "genome.fa"
    genome.write_text(f">g\n{window['sequence'] * 4}\n")
    done = subprocess.run(
        [
            sys.executable,
            "bench/annotate.py",
            "--demo_dir",
            str(demo),
            "--fasta",
            str(genome),
            "--no_reference",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert out.startswith("machine: ") and "ratio GFF-MoE / pyrodigal: 1/" in out and "peak RSS" in out, out
    assert "12,000 bp" in out and "defaults for this model: 9,000 bp windows overlapping 3,000 bp" in out, out
    for row in ("defaults", "Prodigal", "ORF floor"):
        assert any(line.strip().startswith(row) for line in out.splitlines()), out
    ablation = out.split("what each stitching rule buys at the defaults")[1].splitlines()[1:]
    rows = ("defaults", "longest starts", "no long ORFs", "neither", "decoder's starts")
    assert [line[2:18].strip() for line in ablation] == list(rows), out


def test_memory_benchmark_prints_each_layout_against_the_reference_run():
    """bench/annotate_memory.py at toy sizes: one annotate.py process per genome layout, each row's peak RSS
    beside its ratio to the one-contig reference."""
    done = subprocess.run(
        [
            sys.executable,
            "bench/annotate_memory.py",
            "--reference_bp",
            "6000",
            "--long_bp",
            "12000",
            "--contigs",
            "30",
            "--contig_bp",
            "400",
        ],  # fmt: skip
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
    rows = [line for line in done.stdout.splitlines() if " MiB " in line]
    assert [row.split(" MiB")[0].rsplit(None, 1)[0] for row in rows] == [
        "1 contig x 6,000 bp (reference)",
        "1 contig x 12,000 bp",
        "30 contigs x 400 bp",
    ], done.stdout
    # Each ratio is the row's peak RSS over the reference row's, as printed.
    peaks = [float(row.split(" MiB")[0].split()[-1]) for row in rows]
    ratios = [float(row.split("x")[0].split()[-1]) for row in (r.split(" MiB", 1)[1] for r in rows)]
    assert ratios == pytest.approx([peak / peaks[0] for peak in peaks], abs=0.01), done.stdout


def test_start_benchmark_fits_on_one_bacterium_and_scores_another():
    """bench/starts.py on two shared bacteria: the scorer fitted on each, scored on the other's curated starts;
    Paracoccus' starts are found far more often than the longest-start rule finds them."""
    for name in ("tpallidum_nichols", "paracoccus_scn6821"):
        shared_genome(name)
    done = subprocess.run(
        [sys.executable, "bench/starts.py", "--bacteria", "tpallidum_nichols", "paracoccus_scn6821"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()[3:]}
    assert set(rows) == {"tpallidum_nichols", "paracoccus_scn6821"}, done.stdout
    genes, longest, scored = rows["paracoccus_scn6821"]
    assert int(genes) > 1000 and float(scored) > float(longest) + 0.1, done.stdout


def test_the_real_genome_benchmark_scores_the_tracks_per_base_coding_calls(tmp_path, gff_tokenizer):
    """bench/train_real.py's track lines: the decoding it scores hands back each contig's coding probability
    for a model with a track head (none without one), and it is scored per strand against the reference's
    CDS bases (1-based genes)."""
    import numpy as np

    sys.path.insert(0, str(REPO / "bench"))
    import train_real
    from _common import stitching_ablation

    from annotate import load_model
    from annotation.annotator import AnnotationOptions
    from core.features import DIRECT, Gene, Transcript
    from tests.fixtures.training import make_model

    gff_tokenizer.save_pretrained(tmp_path / "tokenizer")
    track_model = make_model(
        tmp_path / "track", tmp_path / "tokenizer", track_loss_weight=1.0, track_conv_channels=8
    )
    plain_model = make_model(tmp_path / "plain", tmp_path / "tokenizer")
    window = orf_window(random.Random(1), "c", 1200, (300, 600))
    options = AnnotationOptions(window_size=600, overlap=150, max_new_tokens=16)
    codings = {}
    for name, directory in (("track", track_model), ("plain", plain_model)):
        model, tokenizer = load_model(str(directory))
        _, stats, codings[name] = stitching_ablation(model, tokenizer, [("c", window["sequence"])], options)
        assert stats.windows == 3
    assert codings["plain"] == {}
    assert codings["track"]["c"].shape == (1200, 2)
    assert ((codings["track"]["c"] >= 0) & (codings["track"]["c"] <= 1)).all()

    called = np.zeros((20, 2))
    called[4:10, 0] = 0.9  # + strand: bases 5-10 (1-based) called coding
    called[0:3, 1] = 0.9  # - strand: three false calls
    gene = Gene(5, 13, "+", transcripts=(Transcript(DIRECT, ((5, 13),), (5, 13)),))  # CDS 5-13, 9 bases
    plus, minus = train_real.coding_scores({"c": called}, {"c": [gene]}).values()
    assert (plus.sensitivity, plus.precision) == (6 / 9, 1.0)
    assert (minus.found, minus.reference, minus.predicted) == (0, 0, 3) and minus.f1 == 0.0
