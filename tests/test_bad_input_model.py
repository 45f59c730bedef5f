"""Bad input on the model side of GFF-MoE (issue 18, items 6-9 and 11-14): one class per kind of input.

Every bad input ends in one line naming the file (and line) and exit status 2, or is read right.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import annotate
import init_model
import train
from annotation.annotator import AnnotationOptions, annotate_records, read_hints
from annotation.constraints import GeneticCode, WindowTables
from annotation.windows import tile
from core.errors import InputError
from dataset_builder.__main__ import build_parser as bake_parser
from dataset_builder.__main__ import main as bake_cli
from dataset_builder.bake import BakeOptions, genome_examples
from genome_io.fasta import read_fasta
from genome_io.gff import read_gff
from pipeline_gffmoe import FASTA_TEXT, read_fasta_input
from scoring.__main__ import main as scoring_cli
from tests.fixtures.genomes import random_dna, write_text
from tests.fixtures.training import REPO, cli_env, tiny_checkpoint, write_orf_dataset
from tokenization.__main__ import main as tokenization_cli
from tokenization.tokenizer import encode_source, load_tokenizer
from training.data import load_windows
from training.synthetic import orf_window, write_windows

__all__ = ["tiny_checkpoint"]  # a fixture used here

ORF = "ATG" + "GCT" * 60 + "TAA"  # a 186-bp open reading frame


def as_rna(dna: str) -> str:
    return dna.replace("T", "U").replace("t", "u")


def one_error_line(capsys, code: int) -> str:
    """The single stderr line of a command that failed with status 2 (besides annotate.py's note that the
    model's code is the project's own)."""
    err = [
        line
        for line in capsys.readouterr().err.strip().splitlines()
        if not line.endswith("none of it is run")
    ]
    assert code == 2 and len(err) == 1, err
    return err[0]


@pytest.fixture
def model_dir(tiny_checkpoint) -> Path:  # noqa: F811 (pytest passes the fixture by its name)
    """The suite's tiny random GFF-MoE (tests.fixtures.training; do not write into it)."""
    return tiny_checkpoint


@pytest.fixture
def fasta(tmp_path) -> Path:
    return write_text(tmp_path / "g.fa", f">c1\n{random_dna(700, seed=5)}\n")


# ---------------------------------------------------------------- 6: RNA and DNA read alike


class TestRnaReadsAsDna:
    DNA = random_dna(300, seed=11) + ORF + random_dna(300, seed=12).lower()

    def test_constraint_tables_read_u_as_t(self):
        rna, dna = (WindowTables(s, GeneticCode(11)) for s in (as_rna(self.DNA), self.DNA))
        assert np.array_equal(rna.bases, dna.bases)
        assert len(dna.orfs(150)) and np.array_equal(rna.orfs(150), dna.orfs(150))

    def test_annotator_windows_and_tokens_are_those_of_the_dna(self, model_dir):
        rna_windows, dna_windows = (tile("c", s, 400, 100) for s in (as_rna(self.DNA), self.DNA))
        assert rna_windows == dna_windows
        tokenizer = load_tokenizer(model_dir)
        assert encode_source(tokenizer, as_rna(self.DNA)) == encode_source(tokenizer, self.DNA)
        model, tokenizer = annotate.load_model(str(model_dir))
        options = AnnotationOptions(window_size=400, overlap=100, max_new_tokens=8, both_strands=False)
        rna = annotate_records(model, tokenizer, [("c", as_rna(self.DNA))], options, progress=False)
        dna = annotate_records(model, tokenizer, [("c", self.DNA)], options, progress=False)
        assert rna[:2] == dna[:2]

    def test_bake_writes_the_same_windows(self, tmp_path):
        gff = write_text(tmp_path / "g.gff3", "##gff-version 3\nc\tx\tCDS\t301\t486\t.\t+\t0\tID=a\n")
        options = BakeOptions(taxon="prokaryotes", limit=500, val_fraction=0.0, test_fraction=0.0)
        baked = []
        for name, sequence in (("rna", as_rna(self.DNA)), ("dna", self.DNA)):
            fasta = write_text(tmp_path / f"{name}.fa", f">c\n{sequence}\n")
            examples, _ = genome_examples("s", fasta, gff, options)
            baked.append([(e["start"], e["sequence"], e["target"]) for _, e in examples])
        assert baked[0] == baked[1] and "U" not in "".join(s for _, s, _ in baked[0])


# ---------------------------------------------------------------- 7: bake accounts for damaged labels

TWO_GENES = ["c\tx\tgene\t101\t400\t.\t+\t.\tID=a", "c\tx\tCDS\t101\t400\t.\t+\t0\tParent=a"]
TWO_GENES += ["c\tx\tgene\t5101\t5400\t.\t-\t.\tID=b", "c\tx\tCDS\t5101\t5400\t.\t-\t0\tParent=b"]


def write_gff(path: Path, *lines: str) -> Path:
    return write_text(path, "\n".join(["##gff-version 3", *lines, ""]))


def bake(tmp_path, gff: Path, length: int = 6000, **options):
    """(examples by split, report) of one genome of `length` random bases, 1 kb windows."""
    fasta = write_text(tmp_path / "g.fa", f">c\n{random_dna(length, seed=21)}\n")
    options = BakeOptions(taxon="prokaryotes", limit=1000, val_fraction=0.0, test_fraction=0.0, **options)
    examples, report = genome_examples("s", fasta, gff, options)
    return [e for _, e in examples], report


class TestBakeAccountsForDamagedLabels:
    def test_a_cds_without_its_parent_is_counted_and_its_window_left_out(self, tmp_path):
        orphan = "c\tx\tCDS\t2101\t2400\t.\t+\t0\tParent=missing"
        examples, report = bake(tmp_path, write_gff(tmp_path / "g.gff3", *TWO_GENES, orphan))
        assert report.features_skipped == {"missing Parent": 1}
        assert "1 feature lines skipped: missing Parent" in report.summary()
        assert examples and not any(e["start"] <= 2400 and e["end"] >= 2101 for e in examples)
        assert report.windows_skipped == {"holds a dropped gene (its bases would read as no gene)": 1}

    def test_windows_where_a_dropped_gene_lies_are_left_out(self, tmp_path):
        other_strand = ["c\tx\tgene\t3101\t3400\t.\t+\t.\tID=d", "c\tx\tCDS\t3101\t3400\t.\t-\t0\tParent=d"]
        examples, report = bake(tmp_path, write_gff(tmp_path / "g.gff3", *TWO_GENES, *other_strand))
        assert report.dropped == {"child on another strand/seqid": 1} and report.kept == 2
        assert not any(e["start"] <= 3400 and e["end"] >= 3101 for e in examples)
        assert {e["n_genes"] for e in examples} == {0, 1}  # the kept genes' windows are baked

    def test_nothing_usable_fails_in_one_line_and_bakes_nothing(self, tmp_path, capsys):
        fasta = write_text(tmp_path / "g.fa", f">c\n{random_dna(3000, seed=2)}\n")
        gff = write_gff(
            tmp_path / "g.gff3",
            "c\tx\tgene\t101\t400\t.\t+\t.\tID=a",
            "c\tx\tCDS\t99\t400\t.\t-\t0\tParent=a",
        )
        argv = ["bake", str(fasta), str(gff), "--taxon", "prokaryotes", "--species", "s", "--quiet"]
        line = one_error_line(capsys, bake_cli([*argv, "--dataset_dir", str(tmp_path / "ds")]))
        assert line.startswith(
            f"python -m dataset_builder: error: {gff}: no usable gene: 1 in the annotation, none kept"
        )
        assert not (tmp_path / "ds" / "data" / "prokaryotes" / "s").exists()


# ---------------------------------------------------------------- 8: malformed GFF lines


class TestMalformedGffLines:
    LENGTHS = {"c1": 1000}

    def test_a_parent_cycle_drops_its_gene_at_the_line_that_closes_it(self, tmp_path):
        path = write_gff(
            tmp_path / "cycle.gff3",
            "c1\tx\tgene\t10\t100\t.\t+\t.\tID=A;Parent=B",
            "c1\tx\tmRNA\t10\t100\t.\t+\t.\tID=B;Parent=A",
            "c1\tx\tCDS\t10\t100\t.\t+\t0\tParent=B",
            "c1\tx\tgene\t200\t400\t.\t+\t.\tID=G",
            "c1\tx\tCDS\t200\t400\t.\t+\t0\tParent=G",
        )
        result = read_hints(path, self.LENGTHS)  # annotate --hints; bake and scoring read the same way
        assert [g.name for g in result.genes_by_seqid["c1"]] == ["G"]
        assert result.report.dropped == {"Parent cycle": 1}
        assert result.report.examples["Parent cycle"] == [
            f"{path}:3: mRNA names Parent 'A', which descends from it"
        ]
        assert scoring_cli(["--reference", str(path), "--prediction", str(path)]) == 0

    def test_a_duplicate_id_drops_both_genes_and_names_both_lines(self, tmp_path):
        path = write_gff(
            tmp_path / "dup.gff3",
            "c1\tx\tgene\t10\t99\t.\t+\t.\tID=g1",
            "c1\tx\tCDS\t10\t99\t.\t+\t0\tParent=g1",
            "c1\tx\tgene\t200\t400\t.\t-\t.\tID=g1",
            "c1\tx\tCDS\t200\t400\t.\t-\t0\tParent=g1",
            "c1\tx\tgene\t500\t700\t.\t-\t.\tID=g3",
            "c1\tx\tCDS\t500\t700\t.\t-\t0\tParent=g3",
        )
        result = read_gff(path, self.LENGTHS)
        assert [g.name for g in result.genes_by_seqid["c1"]] == ["g3"]
        assert result.report.dropped == {"duplicate ID": 2}
        assert result.report.examples["duplicate ID"] == [f"{path}:4: gene ID 'g1' is already used at line 2"]

    @pytest.mark.parametrize("start", ["397²", "３９７"])
    def test_a_coordinate_that_is_not_an_integer_is_not_gff(self, start, tmp_path):
        path = write_gff(tmp_path / "g.gff3", f"c1\tx\tgene\t{start}\t400\t.\t+\t.\tID=a")
        with pytest.raises(
            InputError, match=f"^{path}:2: not GFF: start/end must be integers, got '{start}'"
        ):
            read_gff(path, self.LENGTHS)

    @pytest.mark.parametrize(("start", "lengths"), [("-5", LENGTHS), ("-5", None), ("0", None)])
    def test_a_coordinate_below_1_drops_its_gene(self, start, lengths, tmp_path):
        gene = f"c1\tx\tgene\t{start}\t400\t.\t+\t.\tID=a"
        path = write_gff(tmp_path / "g.gff3", gene, "c1\tx\tgene\t500\t700\t.\t+\t.\tID=b")
        result = read_gff(path, lengths)
        assert [g.name for g in result.genes_by_seqid["c1"]] == ["b"]
        assert result.report.examples == {"coordinate below 1": [f"{path}:2: gene a: coordinate below 1"]}


# ---------------------------------------------------------------- 9: circular genomes


class TestGenesAcrossTheOrigin:
    def circular_gff(self, tmp_path) -> Path:
        return write_gff(
            tmp_path / "circular.gff3",
            "c\tx\tregion\t1\t6000\t.\t+\t.\tID=c:1..6000;Is_circular=true",
            "c\tx\tgene\t1\t6000\t.\t+\t.\tID=o",  # NCBI: two CDS pieces, at the end and the start
            "c\tx\tCDS\t5801\t6000\t.\t+\t0\tID=cds-o;Parent=o",
            "c\tx\tCDS\t1\t100\t.\t+\t1\tID=cds-o;Parent=o",
            "c\tx\tgene\t5901\t6150\t.\t-\t.\tID=spec",  # the GFF3 spec: end past the length
            "c\tx\tCDS\t5901\t6150\t.\t-\t0\tParent=spec",
            *(
                line.replace("\t101\t400\t", "\t2101\t2400\t").replace("5101\t5400", "3101\t3400")
                for line in TWO_GENES
            ),
        )

    def test_a_gene_across_the_origin_is_dropped_with_its_reason(self, tmp_path):
        path = self.circular_gff(tmp_path)
        result = read_gff(path, {"c": 6000})
        assert [g.name for g in result.genes_by_seqid["c"]] == ["a", "b"]
        assert result.report.dropped == {"crosses the origin of a circular sequence": 2}
        assert (
            result.report.examples["crosses the origin of a circular sequence"][0]
            == f"{path}:3: gene o: pieces at both ends"
        )

    def test_bake_writes_no_contig_long_gene_and_leaves_the_origin_out(self, tmp_path):
        examples, report = bake(tmp_path, self.circular_gff(tmp_path))
        assert report.kept == 2 and report.dropped == {"crosses the origin of a circular sequence": 2}
        assert examples and all(e["end"] - e["start"] < 1000 for e in examples)
        assert not any(e["start"] <= 150 or e["end"] >= 5801 for e in examples)  # the pieces' windows


# ---------------------------------------------------------------- 11: option values


class TestOptionValuesAreCheckedFirst:
    @pytest.mark.parametrize(
        "option",
        [
            ["--num_beams", "0"],
            ["--num_beams", "-1"],
            ["--batch_size", "0"],
            ["--genetic_code", "99"],
            ["--window_size", "-600"],
            ["--window_size", "0"],
            ["--window_size", "600", "--overlap", "600"],
            ["--overlap", "-1"],
            ["--max_new_tokens", "-5"],
            ["--max_new_tokens", "0"],
            ["--min_coding_length", "-1"],
            ["--device", "gpu"],
            ["--device", "cuda:99"],
        ],
    )
    def test_annotate_refuses_a_bad_value_before_loading_the_model(self, option, fasta, tmp_path, capsys):
        argv = ["--model", str(tmp_path / "no_model"), "--fasta", str(fasta), "--out", str(tmp_path / "o")]
        with pytest.raises(SystemExit) as exit_:
            annotate.main([*argv, *option])
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert exit_.value.code == 2 and f"error: argument {option[-2]}:" in last, last

    @pytest.mark.parametrize("option", [["--limit", "0"], ["--hint_ratio", "1.5"], ["--hint_ratio", "-0.1"]])
    def test_bake_refuses_a_bad_value(self, option, capsys):
        with pytest.raises(SystemExit) as exit_:
            bake_parser().parse_args(
                ["bake", "g.fa", "g.gff3", "--taxon", "prokaryotes", "--species", "s", *option]
            )
        assert exit_.value.code == 2
        assert f"error: argument {option[0]}:" in capsys.readouterr().err


# ---------------------------------------------------------------- 12: damaged model-side inputs


def damaged_copy(checkpoint: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(checkpoint, copy)
    return copy


class TestDamagedModelInputs:
    def run(self, capsys, model, fasta, tmp_path) -> str:
        out = tmp_path / "out.gff3"
        code = annotate.main(["--model", str(model), "--fasta", str(fasta), "--out", str(out), "--quiet"])
        assert not out.exists()
        return one_error_line(capsys, code)

    def test_missing_or_truncated_weights(self, model_dir, fasta, tmp_path, capsys):
        model = damaged_copy(model_dir, tmp_path)
        weights = model / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])
        assert self.run(capsys, model, fasta, tmp_path).startswith(
            f"annotate.py: error: {model}: cannot load the model"
        )
        weights.unlink()
        assert "model.safetensors" in self.run(capsys, model, fasta, tmp_path)

    def test_pickled_code_is_refused_in_one_line(self, model_dir, fasta, tmp_path, capsys):
        model = damaged_copy(model_dir, tmp_path)
        state = load_file(model / "model.safetensors")
        (model / "model.safetensors").unlink()
        torch.save({**state, "code": Exploit()}, model / "pytorch_model.bin")
        line = self.run(capsys, model, fasta, tmp_path)
        assert line.startswith(
            f"annotate.py: error: {model}: cannot load the model: Weights only load failed"
        )

    def test_init_model_refuses_damaged_or_pickled_dnabert_weights(self, tiny_dnabert_dir, tmp_path, capsys):
        dnabert = damaged_copy(tiny_dnabert_dir, tmp_path)
        weights = dnabert / "model.safetensors"
        argv = ["--save_dir", str(tmp_path / "out"), "--dnabert_path", str(dnabert)]
        state = load_file(tiny_dnabert_dir / "model.safetensors")  # (the copy is truncated: no mmap of it)
        weights.write_bytes(weights.read_bytes()[:1000])
        line = one_error_line(capsys, init_model.main(argv))
        assert line.startswith(f"init_model.py: error: {weights}: cannot read the weights (")
        weights.unlink()
        torch.save({**state, "code": Exploit()}, dnabert / "pytorch_model.bin")
        line = one_error_line(capsys, init_model.main(argv))
        assert line.startswith(
            f"init_model.py: error: {dnabert / 'pytorch_model.bin'}: cannot read the weights (Weights only"
        )
        assert not (tmp_path / "out").exists()

    def test_missing_tokenizer_is_named(self, model_dir, fasta, tmp_path, capsys):
        model = damaged_copy(model_dir, tmp_path)
        (model / "tokenizer.json").unlink()
        line = self.run(capsys, model, fasta, tmp_path)
        assert (
            line
            == f"annotate.py: error: {model / 'tokenizer.json'}: no such file: the model's tokenizer is missing"
        )

    @pytest.mark.parametrize("name", ["no/such/model/dir", "./missing_model"])
    def test_a_missing_directory_is_not_called_a_bad_repo_id(self, name, fasta, tmp_path, capsys):
        line = self.run(capsys, name, fasta, tmp_path)
        assert (
            line
            == f"annotate.py: error: {name}: no such model directory (and not a hub id: name or owner/name)"
        )

    def test_train_on_a_missing_model_directory(self, tmp_path, capsys):
        dataset = write_orf_dataset(tmp_path / "data", n_train=2, n_validation=0)
        capsys.readouterr()  # (the dataset's own progress bars)
        argv = ["--model_name_or_path", "./no/such/model", "--dataset_dir", str(dataset)]
        line = one_error_line(capsys, train.main([*argv, "--output_dir", str(tmp_path / "out"), "--use_cpu"]))
        assert (
            line
            == "train.py: error: ./no/such/model: no such model directory (and not a hub id: name or owner/name)"
        )

    def test_a_directory_as_fasta(self, tmp_path, capsys):
        line = self.run(capsys, "unused", tmp_path, tmp_path)
        assert line == f"annotate.py: error: {tmp_path}: is a directory, not a file"

    def test_a_byte_order_mark_before_the_first_header_is_read(self, tmp_path):
        fasta = tmp_path / "bom.fa"
        fasta.write_bytes(b"\xef\xbb\xbf>c1\nACGT\n")
        assert list(read_fasta(fasta)) == [("c1", "ACGT")]

    def test_append_tk_on_a_missing_tokenizer(self, tmp_path, capsys):
        tokens = write_text(tmp_path / "tokens.txt", "<new_type>\n")
        for target in (tmp_path / "missing.json", tmp_path):  # a file, a directory without tokenizer.json
            named = target if target.suffix else target / "tokenizer.json"
            line = one_error_line(capsys, tokenization_cli(["append_tk", str(tokens), str(target)]))
            assert (
                line
                == f"python -m tokenization: error: {named}: no such file: append_tk needs a tokenizer to append to"
            )

    def test_bake_dataset_dir_naming_a_file(self, tmp_path, capsys):
        fasta = write_text(tmp_path / "g.fa", f">c\n{random_dna(3000, seed=2)}\n")
        gff = write_gff(tmp_path / "g.gff3", *TWO_GENES[:2])
        not_a_dir = write_text(tmp_path / "file", "")
        argv = ["bake", str(fasta), str(gff), "--taxon", "prokaryotes", "--species", "s", "--quiet"]
        line = one_error_line(capsys, bake_cli([*argv, "--dataset_dir", str(not_a_dir)]))
        assert (
            line
            == f"python -m dataset_builder: error: {not_a_dir}: not a directory: the dataset directory names a file"
        )

    def test_training_on_a_dataset_without_training_windows(self, tmp_path):
        rows = [orf_window(random.Random(0), "v", 600, (90, 300))]
        dataset = write_windows(tmp_path / "ds", "prokaryotes", {"train": [], "validation": rows})
        with pytest.raises(InputError, match=f"^{dataset}: config 'prokaryotes' has no training windows"):
            load_windows(dataset, ["prokaryotes"])

    def test_init_model_sizes_that_do_not_fit(self, tmp_path, capsys):
        argv = ["--save_dir", str(tmp_path / "m"), "--hidden_size", "30", "--num_attention_heads", "4"]
        line = one_error_line(capsys, init_model.main(argv))
        assert (
            line
            == "init_model.py: error: model size: hidden_size 30 is not a multiple of num_attention_heads 4"
        )
        with pytest.raises(SystemExit):
            init_model.main(["--save_dir", str(tmp_path / "m"), "--decoder_layers", "0"])
        assert "error: argument --decoder_layers: expected an integer >= 1, got 0" in capsys.readouterr().err
        assert not (tmp_path / "m").exists()


class Exploit:
    """Pickles as a call: what torch's weights-only unpickler refuses."""

    def __reduce__(self):
        return (print, ("this ran",))


# ---------------------------------------------------------------- 13: what the pipeline is given


class TestPipelineInputByContent:
    def test_a_bare_dna_string_is_one_record(self):
        dna = random_dna(500, seed=3)
        assert read_fasta_input(dna) == [("sequence", dna)]
        assert read_fasta_input(as_rna(dna).lower()) == [("sequence", as_rna(dna).lower())]

    def test_text_that_is_neither_says_what_was_expected(self, tmp_path):
        with pytest.raises(InputError, match="^hello world: no such file, and not FASTA text"):
            read_fasta_input("hello world")
        with pytest.raises(InputError, match=f"^{FASTA_TEXT}: no such file, and not FASTA text"):
            read_fasta_input("Z" * 600)  # too long to be a file name
        assert read_fasta_input(str(write_text(tmp_path / "ACGTx", ">a\nAC\n"))) == [("a", "AC")]


# ---------------------------------------------------------------- 14: quiet and Ctrl-C


class TestQuietAndInterrupt:
    def test_quiet_hides_the_weight_loading_bar(self, model_dir, fasta, tmp_path, capsys):
        argv = ["--model", str(model_dir), "--fasta", str(fasta), "--out", str(tmp_path / "o.gff3")]
        assert annotate.main([*argv, "--quiet", "--max_new_tokens", "4", "--window_size", "700"]) == 0
        # Only the notes of which code loads the model and what it decodes with: no weight-loading or
        # annotation bar.
        notes = capsys.readouterr().err.splitlines()
        assert notes[0] == f"{model_dir}: the model's code is this GFF-MoE's own; none of it is run"
        assert len(notes) == 2 and notes[1].startswith("annotating as prokaryotes: 700 bp windows")

    def test_ctrl_c_is_one_line_and_status_130_in_every_command(self):
        """Each CLI's `__main__` block, interrupted where it parses its arguments."""
        script = textwrap.dedent(
            """
            import argparse, runpy, sys
            def interrupted(*args, **kwargs):
                raise KeyboardInterrupt
            argparse.ArgumentParser.parse_known_args = interrupted
            for kind, name in [("path", "annotate.py"), ("module", "dataset_builder"), ("module", "scoring"),
                               ("module", "tokenization"), ("path", "init_model.py"), ("path", "train.py"),
                               ("path", "hub_code.py"), ("path", "demo.py")]:
                sys.argv = [name]
                try:
                    (runpy.run_path if kind == "path" else runpy.run_module)(name, run_name="__main__")
                except SystemExit as exit_:
                    print(name, exit_.code, flush=True)
                print("---", file=sys.stderr, flush=True)
            """
        )
        result = subprocess.run(
            [sys.executable, "-c", script],
            cwd=REPO,
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=240,
        )
        codes = dict(line.split() for line in result.stdout.splitlines())
        assert codes == dict.fromkeys(codes, "130") and len(codes) == 8, result.stderr[-2000:]
        messages = [m.strip() for m in result.stderr.split("---")[:-1]]
        assert all(len(m.splitlines()) == 1 and m.endswith("interrupted") for m in messages), messages
