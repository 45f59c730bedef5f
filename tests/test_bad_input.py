"""Bad and edge inputs (issue 18): one class per defect, each test failing on the code before its fix."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from unittest.mock import patch

import pytest
from transformers import pipeline

import annotate
from annotation.annotator import WindowAnnotator, annotate_records
from annotation.windows import Prediction, StitchStats, stitch
from core.features import Gene, Transcript
from dataset_builder.bake import BakeOptions, bake_genome
from genome_io.gff import read_gff
from genome_io.gff3_writer import write_gff3
from scoring.__main__ import main as scoring_main
from scoring.metrics import score
from tests.fixtures.genes import coding
from tests.fixtures.genomes import random_dna, write_text
from tests.fixtures.training import tiny_checkpoint

__all__ = ["tiny_checkpoint"]  # a fixture used here

needs_gt = pytest.mark.skipif(shutil.which("gt") is None, reason="GenomeTools (gt) is not installed")


def gt_accepts(path: Path) -> None:
    check = subprocess.run(["gt", "gff3validator", str(path)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and not check.stderr.strip(), check.stderr


def one_error_line(text: str, prog: str = "annotate.py") -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), text
    return lines[0]


def model_predicts(*genes: Gene):
    """Every window (each read) "predicts" these window-level genes: annotate.py's own path, fixed output."""

    def predict(self, windows, hints=None):
        return [list(genes) for _ in windows], [[-1.0] * len(genes) for _ in windows], 0

    return patch.object(WindowAnnotator, "__call__", predict)


def annotate_cli(model: Path, fasta: Path, out: Path, *extra: str) -> int:
    argv = ["--model", str(model), "--fasta", str(fasta), "--out", str(out), "--quiet"]
    return annotate.main(
        [*argv, "--window_size", "600", "--overlap", "150", "--max_new_tokens", "16", *extra]
    )


class TestItem0DatasetCacheFollowsTheShards:
    """`load_dataset(DIR, taxon)` in a fresh process returns the windows on disk now, whatever it cached."""

    LOAD = (
        "import datasets, json, sys; ds = datasets.load_dataset(sys.argv[1], 'prokaryotes');"
        "print(json.dumps(sorted({(r['species'], r['seqid']) for s in ds.values() for r in s})))"
    )

    @staticmethod
    def bake(dataset_dir: Path, species: str, seqid: str, seed: int) -> None:
        dataset_dir.parent.mkdir(parents=True, exist_ok=True)
        fasta = write_text(dataset_dir.parent / f"{seqid}.fa", f">{seqid}\n{random_dna(4000, seed=seed)}\n")
        gff = write_text(
            dataset_dir.parent / f"{seqid}.gff3",
            f"##gff-version 3\n{seqid}\tx\tgene\t101\t400\t.\t+\t.\tID=g\n"
            f"{seqid}\tx\tCDS\t101\t400\t.\t+\t0\tParent=g\n",
        )
        options = BakeOptions("prokaryotes", limit=1000, val_fraction=0.0, test_fraction=0.0)
        bake_genome(species, fasta, gff, options, dataset_dir, progress=False)

    def load(self, dataset_dir: Path, cache: Path) -> list[list[str]]:
        env = {**os.environ, "HF_DATASETS_CACHE": str(cache), "HF_DATASETS_OFFLINE": "1"}
        run = subprocess.run(
            [sys.executable, "-c", self.LOAD, str(dataset_dir)], capture_output=True, text=True, env=env
        )
        assert run.returncode == 0, run.stderr
        return json.loads(run.stdout)

    def test_two_folders_with_one_basename_load_as_two(self, tmp_path):
        first, second = tmp_path / "A" / "mydata", tmp_path / "B" / "mydata"
        self.bake(first, "pallidum", "chrA", seed=1)
        self.bake(second, "subtilis", "chrB", seed=2)
        cache = tmp_path / "cache"
        assert self.load(first, cache) == [["pallidum", "chrA"]]
        assert self.load(second, cache) == [["subtilis", "chrB"]]
        assert self.load(second.resolve(), cache) == [["subtilis", "chrB"]]

    def test_a_rebaked_folder_loads_the_new_windows(self, tmp_path):
        dataset = tmp_path / "mydata"
        self.bake(dataset, "bsub", "old", seed=1)
        cache = tmp_path / "cache"
        assert self.load(dataset, cache) == [["bsub", "old"]]
        shutil.rmtree(dataset)
        self.bake(dataset, "bsub", "new", seed=2)
        assert self.load(dataset, cache) == [["bsub", "new"]]


class TestItem1OutputNamingAnInput:
    """annotate.py refuses an --out that is one of its inputs (before any work) and says when it replaces."""

    @pytest.fixture
    def inputs(self, tmp_path):
        fasta = write_text(tmp_path / "genome.fa", f">c\n{random_dna(300, seed=3)}\n")
        hints = write_text(tmp_path / "hints.gff3", "##gff-version 3\nc\tx\tgene\t1\t90\t.\t+\t.\tID=h\n")
        model = tmp_path / "model"
        model.mkdir()
        (model / "config.json").write_text('{"model_type": "gffmoe"}')
        return fasta, hints, model

    def refused(self, capsys, inputs, out: Path) -> str:
        fasta, hints, model = inputs
        before = {p: p.read_bytes() for p in (fasta, hints, model / "config.json")}
        code = annotate_cli(model, fasta, out, "--hints", str(hints))
        line = one_error_line(capsys.readouterr().err)
        assert code == 2 and "is an input of this run" in line
        assert {p: p.read_bytes() for p in before} == before  # nothing overwritten
        return line

    def test_the_fasta_hints_and_model_files_are_refused_as_output(self, capsys, inputs, tmp_path):
        fasta, hints, model = inputs
        assert str(fasta) in self.refused(capsys, inputs, fasta)
        self.refused(capsys, inputs, hints)
        self.refused(capsys, inputs, model / "config.json")
        alias = tmp_path / "alias.fa"
        alias.symlink_to(fasta)
        self.refused(capsys, inputs, alias)
        self.refused(capsys, inputs, tmp_path / "model" / ".." / "genome.fa")

    def test_replacing_an_earlier_output_is_said(self, tiny_checkpoint, tmp_path, capsys):
        fasta = write_text(tmp_path / "genome.fa", f">c\n{random_dna(300, seed=3)}\n")
        out = write_text(tmp_path / "pred.gff3", "old\n")
        assert annotate_cli(tiny_checkpoint, fasta, out) == 0
        assert f"note: {out} exists and will be replaced" in capsys.readouterr().err
        assert out.read_text().startswith("##gff-version 3")


NASTY_SEQIDS = ["contig/1", "a;b=c,d", "100%&x", "größe_ü", "ctg é 2", "plain_id|x:1"]


class TestItem2SeqidEscapingRoundTrips:
    """Column 1 is escaped by the GFF3 spec on writing and unescaped on reading: names survive."""

    @pytest.fixture
    def written(self, tmp_path):
        sequences = {name: random_dna(900, seed=i) for i, name in enumerate(NASTY_SEQIDS)}
        genes = {name: [coding(101, 400), coding(501, 800, "-")] for name in NASTY_SEQIDS}
        gff = tmp_path / "pred.gff3"
        write_gff3(genes, {k: len(v) for k, v in sequences.items()}, gff)
        return sequences, genes, gff

    def test_the_reader_gives_back_the_names_written(self, written):
        sequences, genes, gff = written
        assert "contig%2F1" in gff.read_text()  # escaped on disk, as the spec requires
        result = read_gff(gff, {k: len(v) for k, v in sequences.items()})
        assert {k: [(g.start, g.end, g.strand) for g in v] for k, v in result.genes_by_seqid.items()} == {
            k: [(g.start, g.end, g.strand) for g in v] for k, v in genes.items()
        }
        assert result.report.kept == 2 * len(NASTY_SEQIDS) and not result.report.dropped
        if shutil.which("gt"):
            gt_accepts(gff)

    def test_scoring_and_bake_read_them_against_the_fasta(self, written, tmp_path, capsys):
        sequences, genes, gff = written
        fasta_names = [k for k in sequences if " " not in k]  # a FASTA name ends at the first space
        fasta = write_text(tmp_path / "genome.fa", "".join(f">{k}\n{sequences[k]}\n" for k in fasta_names))
        subset = tmp_path / "subset.gff3"
        write_gff3({k: genes[k] for k in fasta_names}, {k: len(sequences[k]) for k in fasta_names}, subset)
        argv = ["--reference", str(subset), "--prediction", str(subset), "--fasta", str(fasta), "--json"]
        assert scoring_main(argv) == 0
        assert json.loads(capsys.readouterr().out)["prediction"]["gene"]["f1"] == 1.0
        report = bake_genome(
            "nasty", fasta, subset, BakeOptions("prokaryotes", limit=1000), tmp_path / "ds", progress=False
        )
        assert report.kept == 2 * len(fasta_names) and not report.dropped

    @needs_gt
    def test_annotate_output_on_such_names_is_valid_and_scores(self, tiny_checkpoint, tmp_path, capsys):
        names = [k for k in NASTY_SEQIDS if " " not in k]
        fasta = write_text(tmp_path / "g.fa", "".join(f">{k}\n{random_dna(300, seed=5)}\n" for k in names))
        out = tmp_path / "pred.gff3"
        with model_predicts(coding(0, 89)):
            assert annotate_cli(tiny_checkpoint, fasta, out) == 0
            # and read back as hints (a previous annotation): every seqid found in the FASTA
            assert annotate_cli(tiny_checkpoint, fasta, tmp_path / "again.gff3", "--hints", str(out)) == 0
        assert f"{len(names)} genes in file; {len(names)} kept" in capsys.readouterr().err
        gt_accepts(out)
        result = read_gff(out, {k: 300 for k in names})
        assert sorted(result.genes_by_seqid) == sorted(names) and result.report.kept == len(names)
        assert not result.report.dropped and not result.report.skipped_features
        argv = ["--reference", str(out), "--prediction", str(out), "--fasta", str(fasta), "--json"]
        assert scoring_main(argv) == 0
        assert json.loads(capsys.readouterr().out)["prediction"]["gene"]["f1"] == 1.0


class TestItem3EmptyFastaRecords:
    """A record without bases gets no `##sequence-region` (`1 0` is invalid) and is named in the stats."""

    @needs_gt
    @pytest.mark.parametrize("text", [">x\n", ">a\nACGTACGTAC\n>x\n>b\nACGTAC\n"])
    def test_annotate_skips_it_with_a_line_and_gt_accepts(self, tiny_checkpoint, tmp_path, capsys, text):
        fasta = write_text(tmp_path / "g.fa", text)
        out = tmp_path / "pred.gff3"
        assert annotate_cli(tiny_checkpoint, fasta, out) == 0
        assert "1 empty sequence(s) skipped: x" in capsys.readouterr().out
        assert "sequence-region x" not in out.read_text()
        gt_accepts(out)

    @needs_gt
    def test_the_pipeline_given_an_empty_record(self, tiny_checkpoint, tmp_path):
        annotator = pipeline("gff-annotation", model=str(tiny_checkpoint), trust_remote_code=True)
        result = annotator(">x\n", max_new_tokens=8)
        assert "sequence-region" not in result["gff3"]
        gff = write_text(tmp_path / "p.gff3", result["gff3"])
        gt_accepts(gff)


class TestItem4RemoteCodeNeedsConsent:
    """A directory saved by this project loads with GFF-MoE's own classes; other code needs the flag."""

    def test_a_saved_directory_loads_without_the_flag_and_runs_none_of_its_files(
        self, tiny_checkpoint, capsys
    ):
        model, _ = annotate.load_model(str(tiny_checkpoint))
        assert type(model).__module__ == "modeling_gffmoe"  # this checkout's module, not a copy of the dir's
        assert "this GFF-MoE's own" in capsys.readouterr().err

    def test_an_edited_modeling_file_is_refused_without_the_flag(self, tiny_checkpoint, tmp_path, capsys):
        edited = tmp_path / "edited"
        shutil.copytree(tiny_checkpoint, edited)
        marker = tmp_path / "code-ran"
        with open(edited / "modeling_gffmoe.py", "a") as fh:
            fh.write(f"\nopen({str(marker)!r}, 'w').close()\n")
        fasta = write_text(tmp_path / "g.fa", f">c\n{random_dna(300, seed=3)}\n")
        assert annotate_cli(edited, fasta, tmp_path / "out.gff3") == 2
        line = one_error_line(capsys.readouterr().err)
        assert "modeling_gffmoe.py" in line and "--trust_remote_code" in line
        assert not marker.exists() and not (tmp_path / "out.gff3").exists()
        assert annotate_cli(edited, fasta, tmp_path / "out.gff3", "--trust_remote_code") == 0
        assert marker.exists()
        assert "--trust_remote_code" in capsys.readouterr().err


class TestItem5DuplicateGenes:
    """One gene written once (and the stats count the copies removed); scoring matches one to one."""

    @staticmethod
    def one_window(genes: list[Gene], scores: list[float]) -> list[Prediction]:
        return [Prediction(g, s, (0,)) for g, s in zip(genes, scores, strict=True)]

    def test_repeats_within_one_window_collapse_and_are_counted(self):
        stats = StitchStats()
        kept = stitch(self.one_window([coding(1, 10)] * 5, [-1.0, -0.5, -2.0, -0.7, -0.9]), [], stats)
        assert [(p.gene, p.score) for p in kept] == [(coding(1, 10), -0.5)] and stats.duplicates == 4

    def test_two_starts_of_one_stop_are_one_gene(self):
        stats = StitchStats()
        genes = [coding(100, 400, "-"), coding(100, 700, "-"), coding(500, 900, "-")]
        kept = stitch(self.one_window(genes, [-1.0, -0.3, -0.5]), [], stats)
        assert [p.gene for p in kept] == [coding(100, 700, "-"), coding(500, 900, "-")]  # overlap, two stops
        assert stats.duplicates == 1

    def test_annotate_writes_a_repeated_gene_once(self, tiny_checkpoint):
        model, tokenizer = annotate.load_model(str(tiny_checkpoint))

        with model_predicts(*[coding(0, 9)] * 5):  # what a model looping on one record returns
            genes, _, stats = annotate_records(model, tokenizer, [("c", "ATGAAATAGC")], progress=False)
        assert genes == {"c": [coding(1, 10)]}
        assert "4 duplicates" in stats.summary()

    def test_a_second_prediction_of_one_gene_is_a_false_positive(self):
        scores = score({"c": [coding(100, 399)]}, {"c": [coding(100, 399), coding(100, 399)]})
        for level in ("exon", "transcript", "gene", "gene_3prime", "gene_exact"):
            assert (scores[level].sensitivity, scores[level].precision) == (1.0, 0.5), level


class TestItem10WhatTheProjectWritesItReads:
    """Strand `.` genes, zero-gene predictions and seqids the two files do not share."""

    def test_an_unstranded_gene_round_trips(self, tmp_path):
        gene = Gene(11, 90, ".", "ncRNA_gene", (Transcript("ncRNA", ((11, 40), (61, 90))),))
        gff = tmp_path / "pred.gff3"
        write_gff3({"c": [gene, coding(101, 400)]}, {"c": 500}, gff)
        result = read_gff(gff, {"c": 500})
        assert result.genes_by_seqid["c"][0].strand == "." and result.report.kept == 2, (
            result.report.summary()
        )
        if shutil.which("gt"):
            gt_accepts(gff)

    def test_a_zero_gene_prediction_scores(self, tmp_path, capsys):
        fasta = write_text(tmp_path / "g.fa", f">c\n{random_dna(500, seed=1)}\n")
        reference, prediction = tmp_path / "ref.gff3", tmp_path / "pred.gff3"
        write_gff3({"c": [coding(101, 400)]}, {"c": 500}, reference)
        write_gff3({}, {"c": 500}, prediction)  # what annotate.py writes when it finds nothing
        argv = ["--reference", str(reference), "--prediction", str(prediction), "--json"]
        assert scoring_main([*argv, "--fasta", str(fasta)]) == 0
        gene = json.loads(capsys.readouterr().out)["prediction"]["gene"]
        assert (gene["sensitivity"], gene["predicted"]) == (0.0, 0)
        assert scoring_main(argv) == 0  # without --fasta too: nothing predicted is not a name mismatch

    def test_no_seqid_in_common_without_fasta_is_an_error(self, tmp_path, capsys):
        reference, prediction = tmp_path / "ref.gff3", tmp_path / "pred.gff3"
        write_gff3({"chr1": [coding(101, 400)]}, {"chr1": 500}, reference)
        write_gff3({"NC_1": [coding(101, 400)]}, {"NC_1": 500}, prediction)
        assert scoring_main(["--reference", str(reference), "--prediction", str(prediction)]) == 2
        line = one_error_line(
            capsys.readouterr().err.splitlines()[-1], "python -m scoring"
        )  # after each file's summary
        assert "pred.gff3" in line and "no seqid in common" in line and "chr1" in line and "NC_1" in line

    def test_a_seqid_only_the_prediction_has_is_a_warning(self, tmp_path, capsys):
        reference, prediction = tmp_path / "ref.gff3", tmp_path / "pred.gff3"
        write_gff3({"chr1": [coding(101, 400)]}, {"chr1": 500}, reference)
        write_gff3(
            {"chr1": [coding(101, 400)], "NC_1": [coding(1, 90)]}, {"chr1": 500, "NC_1": 500}, prediction
        )
        assert scoring_main(["--reference", str(reference), "--prediction", str(prediction)]) == 0
        warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning")]
        assert len(warnings) == 1 and "NC_1" in warnings[0]
