"""Make a saved GFF-MoE directory pipeline-ready: the `gff-annotation` pipeline's code travels with it.

transformers loads a custom pipeline from `config.custom_pipelines[task]["impl"]` ("module.Class"), copying
that module and, recursively, its same-folder relative imports (`from .codec import ...`) into its module
cache. So the project modules the pipeline needs are copied flat next to config.json; each of them imports
its siblings relatively there and its packages absolutely in the repository (try/except ImportError).

    python hub_code.py MODEL_DIR     # or save_hub_code(MODEL_DIR) after save_pretrained
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from os import PathLike
from pathlib import Path

from genome_io.cli import run_cli

PROG = "hub_code.py"
TASK = "gff-annotation"
REPOSITORY = Path(__file__).resolve().parent
# The pipeline module and everything it imports, in the repository; flat names must be unique.
HUB_CODE_FILES = (
    "pipeline_gffmoe.py",
    "annotation/annotator.py",
    "annotation/constraints.py",
    "annotation/windows.py",
    "dataset_builder/taxa.py",
    "genome_io/errors.py",
    "genome_io/fasta.py",
    "genome_io/files.py",
    "genome_io/gff.py",
    "genome_io/gff3_writer.py",
    "tokenization/codec.py",
    "tokenization/coordinates.py",
    "tokenization/features.py",
    "tokenization/tokenizer.py",
    "tokenization/track.py",
)
# What `Pipeline.save_pretrained` writes for a pipeline registered with
# `PIPELINE_REGISTRY.register_pipeline(TASK, GffAnnotationPipeline, pt_model=AutoModelForSeq2SeqLM, type="text")`.
CUSTOM_PIPELINE = {
    "impl": "pipeline_gffmoe.GffAnnotationPipeline",
    "pt": ["AutoModelForSeq2SeqLM"],
    "type": "text",
}


# Every Python file a saved GFF-MoE directory carries (save_pretrained's two, then the pipeline's), by flat name.
OWN_CODE = {
    Path(name).name: REPOSITORY / name
    for name in ("configuration_gffmoe.py", "modeling_gffmoe.py", *HUB_CODE_FILES)
}


def foreign_code(model_dir: str | PathLike) -> list[str]:
    """The Python files of a model directory that are not byte-identical to this checkout's own (what
    save_pretrained and `save_hub_code` copied there): empty when loading it runs only this project's code."""
    return [
        path.name
        for path in sorted(Path(model_dir).glob("*.py"))
        if path.name not in OWN_CODE or path.read_bytes() != OWN_CODE[path.name].read_bytes()
    ]


def save_hub_code(model_dir: str | PathLike) -> list[Path]:
    """Copy the pipeline's modules flat into a saved model directory and register the `gff-annotation`
    task in its config.json (other custom pipelines are kept). Returns the copied files."""
    model_dir = Path(model_dir)
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: no config.json; save the model before its hub code")
    copied = [
        Path(shutil.copyfile(REPOSITORY / name, model_dir / Path(name).name)) for name in HUB_CODE_FILES
    ]
    config = json.loads(config_path.read_text())
    config["custom_pipelines"] = {**config.get("custom_pipelines", {}), TASK: CUSTOM_PIPELINE}
    config_path.write_text(
        json.dumps(config, indent=2, sort_keys=True) + "\n"
    )  # as save_pretrained writes it
    return copied


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "model_dir", type=Path, help="a directory written by save_pretrained (init_model, train)"
    )
    return parser


def copy_hub_code(argv=None) -> None:
    args = build_parser().parse_args(argv)
    copied = save_hub_code(args.model_dir)
    print(
        f"{args.model_dir}: {len(copied)} code files; pipeline('{TASK}', model=..., trust_remote_code=True)"
    )


def main(argv=None) -> int:
    return run_cli(PROG, copy_hub_code, argv, errors=(FileNotFoundError,))


if __name__ == "__main__":
    sys.exit(main())
