"""pipeline("gff-annotation") from a saved directory alone: a fresh process, the repository NOT importable."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers.dynamic_module_utils import get_relative_import_files

import annotate
import hub_code
from annotation.annotator import AnnotationOptions, OptionError, read_hints
from core.errors import InputError
from genome_io.gff3_writer import gff3_lines
from pipeline_gffmoe import FASTA_TEXT, GffAnnotationPipeline, read_fasta_input
from tests.fixtures.genomes import random_dna, write_text
from tests.fixtures.training import tiny_model_dir

__all__ = ["tiny_model_dir"]  # fixtures used here

OPTIONS = {"window_size": 600, "overlap": 150, "max_new_tokens": 40}
HINT_CDS = "ctg1\tev\tCDS\t101\t400\t.\t-\t0\tParent=h\n"
GENE_BIAS = {"<gene>": 8, "<+>": 8, "<->": 8, "<direct>": 8, "<cds_all>": 12, "<cds>": 12, "<eos>": -8}

FRESH_PROCESS_SCRIPT = textwrap.dedent(
    """
    import dataclasses, json, sys
    from transformers import pipeline
    model_dir, fasta_path, options, hints = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
    for module in ("annotation", "tokenization", "genome_io", "pipeline_gffmoe"):
        try:
            __import__(module)
            sys.exit(f"the repository must not be importable here ({module})")
        except ImportError:
            pass
    annotator = pipeline("gff-annotation", model=model_dir, trust_remote_code=True)
    results = {"module": type(annotator).__module__}
    for name, fasta in (("text", open(fasta_path).read()), ("path", fasta_path)):
        out = annotator(fasta, **options)
        genes = {seqid: [dataclasses.asdict(g) for g in gs] for seqid, gs in out["genes"].items()}
        results[name] = {"genes": genes, "lengths": out["sequence_lengths"], "gff3": out["gff3"]}
    results["hints"] = annotator(fasta_path, hints=hints, **options)["gff3"]
    results["workers"] = annotator(fasta_path, workers=2, **options)["gff3"]
    for name, bad, hint_file in (
        ("empty", "", None),
        ("not_dna", ">c\\nACGT\\nACXT\\n", None),
        ("other_seqid_hints", ">c\\nACGT\\n", hints),
    ):
        try:
            annotator(bad, hints=hint_file)
            results[name] = "no error"
        except Exception as err:
            results[name] = f"{type(err).__name__}: {err}"
    print(json.dumps(results))
    """
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_model_dir):
    """The tiny random GFF-MoE init_model saved, steered towards coding genes and saved again."""
    root = tmp_path_factory.mktemp("pipeline_gffmoe")
    assert "gff-annotation" in json.loads((tiny_model_dir / "config.json").read_text())["custom_pipelines"]

    model, tokenizer = annotate.load_model(str(tiny_model_dir))
    vocab = tokenizer.get_vocab()
    with torch.no_grad():  # a random model mostly stops at once; make it write genes for the constraints
        for token, bias in GENE_BIAS.items():
            model.lm_head.bias[vocab[token]] += bias
    saved = root / "steered"
    model.save_pretrained(saved)
    tokenizer.save_pretrained(saved)
    hub_code.save_hub_code(saved)
    return saved


@pytest.fixture(scope="module")
def fasta(tmp_path_factory):
    contigs = {
        "ctg1": random_dna(1400, seed=7) + "N" * 200 + random_dna(300, seed=8),
        "ctg2": random_dna(250, seed=9).lower(),
    }
    text = "".join(f">{seqid} test contig\n{seq}\n" for seqid, seq in contigs.items())
    return write_text(tmp_path_factory.mktemp("fasta") / "genome.fa", text)


def without_scores(gff3: str) -> list[list[str]]:
    """GFF3 lines with column 6 blanked: scores are floats, equal only up to thread-count rounding."""
    return [line.split("\t")[:5] + line.split("\t")[6:] for line in gff3.splitlines()]


def test_pipeline_runs_from_the_saved_directory_alone(model_dir, fasta, tmp_path):
    model, tokenizer = annotate.load_model(str(model_dir))
    genes, lengths, stats = annotate.annotate_genome(
        model, tokenizer, fasta, AnnotationOptions(**OPTIONS), progress=False
    )
    assert any(genes.values()), "the steered model should write genes"
    expected_genes = json.loads(
        json.dumps({seqid: [dataclasses.asdict(g) for g in gs] for seqid, gs in genes.items()})
    )
    expected_gff3 = "".join(gff3_lines(genes, lengths, scores=stats.scores))

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    copied = shutil.copytree(model_dir, elsewhere / "model_copy")
    hints = write_text(tmp_path / "hints.gff3", f"ctg1\tev\tgene\t101\t400\t.\t-\t.\tID=h\n{HINT_CDS}")
    hints_by_seqid = read_hints(hints, lengths).genes_by_seqid
    hinted = annotate.annotate_genome(
        model, tokenizer, fasta, AnnotationOptions(**OPTIONS), progress=False, hints=hints_by_seqid
    )
    expected_hinted_gff3 = "".join(gff3_lines(hinted[0], lengths, scores=hinted[2].scores))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS_SCRIPT, *map(str, (copied, fasta, json.dumps(OPTIONS), hints))],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["module"].startswith("transformers_modules.")  # loaded from the directory's own code

    for name in ("text", "path"):
        assert out[name]["genes"] == expected_genes, name
        assert out[name]["lengths"] == lengths
        assert without_scores(out[name]["gff3"]) == without_scores(expected_gff3)
    assert without_scores(out["workers"]) == without_scores(expected_gff3)  # two forked CPU workers
    gff3 = write_text(tmp_path / "pipeline.gff3", out["text"]["gff3"])
    if shutil.which("gt"):
        check = subprocess.run(["gt", "gff3validator", str(gff3)], capture_output=True, text=True, timeout=60)
        assert check.returncode == 0 and not check.stderr.strip(), check.stderr

    assert out["empty"].startswith(f"InputError: {FASTA_TEXT}:1: empty FASTA")
    assert out["not_dna"].startswith(f"InputError: {FASTA_TEXT}:3: invalid character 'X'")
    # Hints travel with the saved code: read by the same GFF reader, checked against the FASTA's seqids.
    assert without_scores(out["hints"]) == without_scores(expected_hinted_gff3)
    assert out["other_seqid_hints"] == f"InputError: {hints}:1: hint seqid 'ctg1' is not in the FASTA file"


def test_saved_code_is_exactly_what_the_pipeline_imports(model_dir):
    config = json.loads((model_dir / "config.json").read_text())
    assert config["custom_pipelines"]["gff-annotation"] == hub_code.CUSTOM_PIPELINE
    assert config["model_type"] == "gffmoe" and "AutoModelForSeq2SeqLM" in config["auto_map"]
    # transformers copies the pipeline module and, recursively, its relative imports: all present, none extra.
    needed = {os.path.basename(f) for f in get_relative_import_files(model_dir / "pipeline_gffmoe.py")}
    flat = {os.path.basename(name) for name in hub_code.HUB_CODE_FILES}
    assert needed | {"pipeline_gffmoe.py"} == flat
    assert all((model_dir / name).is_file() for name in flat)


def test_saved_code_imports_the_project_only_relatively(model_dir):
    """Each copied module names its siblings as `.name` (what transformers copies along); a package import
    (`from core.features import ...`) would fail where the repository is absent."""
    project = {
        p.stem for p in hub_code.REPOSITORY.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()
    }
    absolute = [
        f"{name}:{node.lineno}: {ast.unparse(node)}"
        for name in map(os.path.basename, hub_code.HUB_CODE_FILES)
        for node in ast.walk(ast.parse((model_dir / name).read_text()))
        if (isinstance(node, ast.Import) and any(a.name.split(".")[0] in project for a in node.names))
        or (isinstance(node, ast.ImportFrom) and not node.level and node.module.split(".")[0] in project)
    ]
    assert not absolute, "\n".join(absolute)
    assert "from .features import" in (model_dir / "gff.py").read_text()  # rewritten, not dropped
    assert hub_code.foreign_code(model_dir) == []  # the rewritten form is this checkout's own
    edited = model_dir.parent / "edited"
    shutil.copytree(model_dir, edited)
    with (edited / "features.py").open("a") as f:
        f.write("# edited\n")
    assert hub_code.foreign_code(edited) == ["features.py"]


def test_flat_copies_refuse_imports_they_cannot_carry(tmp_path, monkeypatch):
    monkeypatch.setattr(hub_code, "REPOSITORY", tmp_path)
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "__init__.py").write_text("")
    for text, words in (
        ("import core.features\n", "write `from MODULE import NAME`"),
        (
            "def f():\n    from core.other import x\n",
            "m.py:2: imports core.other, which a model directory lacks",
        ),
    ):
        (tmp_path / "m.py").write_text(text)
        with pytest.raises(ValueError, match=re.escape(words)):
            hub_code.flat_source("m.py")


def test_save_hub_code_keeps_other_pipelines_and_needs_a_saved_model(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"custom_pipelines": {"other": {"impl": "x.Y"}}}))
    hub_code.save_hub_code(tmp_path)
    assert set(json.loads((tmp_path / "config.json").read_text())["custom_pipelines"]) == {
        "other",
        "gff-annotation",
    }
    assert hub_code.main([str(tmp_path / "missing")]) == 2
    assert "no config.json" in capsys.readouterr().err


def test_fasta_input_is_text_or_a_path_with_clear_errors(tmp_path):
    path = write_text(tmp_path / "g.fa", ">a\nACGT\n>b x\nNNAC\n")
    assert read_fasta_input(path) == read_fasta_input(str(path)) == [("a", "ACGT"), ("b", "NNAC")]
    assert read_fasta_input(">a\nAC\nGT") == [("a", "ACGT")]
    with pytest.raises(InputError, match=f"^{FASTA_TEXT}:1: empty FASTA"):
        read_fasta_input("  \n")
    with pytest.raises(InputError, match=f"^{FASTA_TEXT}:2: not FASTA"):
        read_fasta_input("\nACGT\n")
    with pytest.raises(InputError, match="missing.fa: no such file"):
        read_fasta_input(str(tmp_path / "missing.fa"))
    bad = write_text(tmp_path / "bad.fa", ">c\nACGT\nAC-T\n")
    with pytest.raises(InputError, match="bad.fa:3: invalid character '-'"):
        read_fasta_input(bad)
    with pytest.raises(TypeError, match="FASTA text or a path"):
        read_fasta_input(42)


def test_pipeline_in_process_rejects_unknown_options(model_dir):
    model, tokenizer = annotate.load_model(str(model_dir))
    annotator = GffAnnotationPipeline(model=model, tokenizer=tokenizer, device="cpu")
    with pytest.raises(TypeError, match="unknown gff-annotation options: window"):
        annotator(">a\nACGT\n", window=10)
    out = annotator(">a\nACGTACGTAC\n", max_new_tokens=8, window_batch_size=2)
    assert out["sequence_lengths"] == {"a": 10} and out["gff3"].startswith("##gff-version 3\n")


def test_pipeline_options_in_code_are_checked_at_the_call(model_dir):
    """A bad value passed in code is refused in one line before any work, at the call or at construction,
    and an unknown option is named with the valid ones."""
    model, tokenizer = annotate.load_model(str(model_dir))
    annotator = GffAnnotationPipeline(model=model, tokenizer=tokenizer, device="cpu")
    with pytest.raises(OptionError, match="^num_beams: expected an integer >= 1, got 0$"):
        annotator(">a\nACGT\n", num_beams=0)
    with pytest.raises(ValueError, match="^overlap: 700 bp must be below the window size \\(600 bp\\)$"):
        annotator(">a\nACGT\n", window_size=600, overlap=700)
    with pytest.raises(OptionError, match="^batch_size: expected an integer >= 1, got 0$"):
        annotator(">a\nACGT\n", window_batch_size=0)
    with pytest.raises(OptionError, match="^workers: expected an integer >= 1, got 0$"):
        annotator(">a\nACGT\n", workers=0)
    with pytest.raises(OptionError, match="^taxon: expected one of prokaryotes"):
        GffAnnotationPipeline(model=model, tokenizer=tokenizer, device="cpu", taxon="bacteria")
    with pytest.raises(TypeError) as unknown:
        annotator(">a\nACGT\n", beams=2)
    valid = str(unknown.value).split("(valid: ")[1].rstrip(")").split(", ")
    assert str(unknown.value).startswith("unknown gff-annotation options: beams (valid: ")
    assert set(valid) == {f.name for f in dataclasses.fields(AnnotationOptions)} - {"batch_size"} | {
        "window_batch_size",
        "progress",
        "hints",
        "workers",
        "source",
    }
    # Options given to the pipeline and to the call merge key by key.
    configured = GffAnnotationPipeline(model=model, tokenizer=tokenizer, device="cpu", window_size=600)
    with pytest.raises(OptionError, match="^overlap: 650 bp must be below the window size \\(600 bp\\)$"):
        configured(">a\nACGT\n", overlap=650)
