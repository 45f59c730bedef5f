"""Make a saved GFF-MoE directory pipeline-ready: the `gff-annotation` pipeline's code travels with it.

transformers loads a custom pipeline from `config.custom_pipelines[task]["impl"]` ("module.Class"), copying
that module and, recursively, its same-folder relative imports (`from .codec import ...`) into its module
cache. So the project modules the pipeline needs are copied flat next to config.json, their imports of
each other rewritten on the way (`from core.features import Gene` -> `from .features import Gene`): the
source says each import once, as the repository runs it.

    python hub_code.py MODEL_DIR     # or save_hub_code(MODEL_DIR) after save_pretrained
"""

from __future__ import annotations

import argparse
import ast
import json
import re
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
    "annotation/starts.py",
    "annotation/windows.py",
    "core/errors.py",
    "core/features.py",
    "core/orfs.py",
    "core/taxa.py",
    "genome_io/fasta.py",
    "genome_io/files.py",
    "genome_io/gff.py",
    "genome_io/gff3_writer.py",
    "tokenization/codec.py",
    "tokenization/coordinates.py",
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


# Each copied module's import name in the repository -> its flat name in a model directory.
FLAT_NAMES = {name.removesuffix(".py").replace("/", "."): Path(name).stem for name in HUB_CODE_FILES}


def flat_source(name: str) -> str:
    """Repository file `name` as a model directory carries it: its imports of copied modules made relative
    to the flat folder (`from genome_io.fasta import x` -> `from .fasta import x`), all else as it is.
    Any other project import could not load there, so it is an error (ValueError)."""
    path = REPOSITORY / name
    source = path.read_bytes().decode()
    lines = source.split("\n")
    package = ".".join(Path(name).parent.parts)
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Import) and any(_is_project(alias.name) for alias in node.names):
            raise ValueError(f"{name}:{node.lineno}: write `from MODULE import NAME`: it can be made flat")
        if not isinstance(node, ast.ImportFrom) or not (node.level or _is_project(node.module)):
            continue
        module = f"{package}.{node.module}" if node.level else node.module
        if module not in FLAT_NAMES:
            raise ValueError(f"{name}:{node.lineno}: imports {module}, which a model directory lacks")
        if not node.level:  # a relative import of a sibling is flat already
            line = lines[node.lineno - 1]
            start = node.col_offset  # of `from`: imports are ASCII, so bytes and characters agree
            lines[node.lineno - 1] = line[:start] + re.sub(
                rf"from\s+{re.escape(module)}\b", f"from .{FLAT_NAMES[module]}", line[start:], count=1
            )
    return "\n".join(lines)


def _is_project(module: str) -> bool:
    top = module.split(".")[0]
    return (REPOSITORY / top).is_dir() or (REPOSITORY / f"{top}.py").is_file()


def shipped_code() -> dict[str, str]:
    """Every Python file a saved GFF-MoE directory carries, by flat name, as written there: save_pretrained's
    two as they are, the pipeline's by `flat_source`."""
    code = {
        name: (REPOSITORY / name).read_bytes().decode()
        for name in ("configuration_gffmoe.py", "modeling_gffmoe.py")
    }
    return code | {Path(name).name: flat_source(name) for name in HUB_CODE_FILES}


def foreign_code(model_dir: str | PathLike) -> list[str]:
    """The Python files of a model directory that are not byte-identical to what this checkout ships
    (save_pretrained and `save_hub_code`): empty when loading it runs only this project's code."""
    own = shipped_code()
    return [
        path.name
        for path in sorted(Path(model_dir).glob("*.py"))
        if path.name not in own or path.read_bytes() != own[path.name].encode()
    ]


def save_hub_code(model_dir: str | PathLike) -> list[Path]:
    """Copy the pipeline's modules flat into a saved model directory and register the `gff-annotation`
    task in its config.json (other custom pipelines are kept). Returns the copied files."""
    model_dir = Path(model_dir)
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: no config.json; save the model before its hub code")
    copied = []
    for name in HUB_CODE_FILES:
        (target := model_dir / Path(name).name).write_bytes(flat_source(name).encode())
        copied.append(target)
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
