"""Annotate a genome: FASTA in, GFF3 out.

    python annotate.py --model DIR_OR_HUB_ID --fasta genome.fa[.gz] --out pred.gff3 [--taxon prokaryotes]
    accelerate launch --num_processes N annotate.py ...   # N processes (GPUs) share the windows

Contigs are streamed and tiled into windows of the length the model was trained on (else the taxon's
limit) with overlap (the taxon, unless given, is the one the model was trained on); windows are annotated
in batches (across contigs) by `generate` (cached decoding, optionally beam search) under the biology
constraints (`annotation.constraints`), each window read both as given and as its reverse complement
(`--no_both_strands`: once); the windows' genes are stitched back into one annotation per contig
(`annotation.windows`) and written as GFF3 as each contig is done, each gene scored by the mean
log-probability of its tokens. Memory holds the batches in flight and their contigs, not the genome; the
output appears, complete, only at the end. Under `accelerate launch` the processes decode whole batches in
turn and the first one writes the one GFF3, the same as one process writes. `--hints evidence.gff3` gives
the encoder of each window the evidence genes it overlaps (`[HIT]` records after the DNA), as AUGUSTUS
reads hints. Library entry point: `annotate_genome` (from `annotation.annotator`, shared with the
transformers pipeline in pipeline_gffmoe.py).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import torch
from accelerate import PartialState
from accelerate.utils import parse_flag_from_env
from Bio.Data.CodonTable import unambiguous_dna_by_id
from safetensors import SafetensorError

from annotation.annotator import (
    TAXA,
    AnnotatedContig,
    AnnotationOptions,
    AnnotationStats,
    OptionError,
    annotate_contigs,
    annotate_genome,  # noqa: F401 (the library entry point, see above)
    read_hints,
)
from core.errors import InputError, first_line
from genome_io.bedgraph import write_bedgraph
from genome_io.cli import (
    SnakeBooleanAction,
    check_model_source,
    device,
    exit_launched,
    non_negative_float,
    non_negative_int,
    old_spelling,
    positive_int,
    run_cli,
    use_cpu_processes_without_gpus,
)
from genome_io.fasta import fasta_lengths, read_fasta
from genome_io.files import write_atomically
from genome_io.gff3_writer import gff3_contig_lines, gff3_header
from tokenization.tokenizer import TokenizerError, check_gff_vocabulary, read_tokenizer

# ---------------------------------------------------------------- command line

PROG = "annotate.py"

# What a damaged or foreign checkpoint raises while it loads: transformers (OSError, ValueError), safetensors
# (a truncated file), torch's weights-only unpickler (pickled code refused) and torch's own readers.
LOAD_ERRORS = (OSError, ValueError, RuntimeError, SafetensorError, pickle.UnpicklingError)
OPTIONS = {option.name: option for option in fields(AnnotationOptions)}


def load_model(
    name_or_path: str,
    device: str = "cpu",
    trust_remote_code: bool = False,
    dtype: torch.dtype = torch.float32,
):
    """Model and tokenizer from a GFF-MoE directory or hub id; InputError when it is not one.

    A directory whose Python files are this checkout's own (`hub_code.foreign_code`) is loaded with
    GFF-MoE's classes, running none of its files; other code (another version, an edited file, a hub id's)
    runs only with `trust_remote_code`, transformers' convention. One line on stderr says which it is.
    The tokenizer is read from its own files and must carry the GFF vocabulary. The weights are cast to
    `dtype` (`model_dtype`).
    """
    from transformers import AutoConfig, AutoModelForSeq2SeqLM

    from hub_code import foreign_code
    from modeling_gffmoe import GffMoeForConditionalGeneration

    path = Path(name_or_path)
    config_path = path / "config.json"
    if path.is_dir():
        if not config_path.is_file():
            raise InputError(config_path, None, "no config.json: not a GFF-MoE model directory")
        try:
            model_type = json.loads(config_path.read_text()).get("model_type")
        except json.JSONDecodeError as err:
            raise InputError(config_path, err.lineno, f"not JSON: {err.msg}") from None
        if model_type != "gffmoe":
            raise InputError(
                config_path, None, f"model_type {model_type!r} is not 'gffmoe': not a GFF-MoE model"
            )
        if not (path / "tokenizer.json").is_file():  # else transformers tries to convert a slow tokenizer
            raise InputError(path / "tokenizer.json", None, "no such file: the model's tokenizer is missing")
        foreign = foreign_code(name_or_path)
        if foreign and not trust_remote_code:
            raise InputError(
                name_or_path,
                None,
                f"its code ({', '.join(foreign)}) is not this GFF-MoE's own: pass --trust_remote_code to run it",
            )
    else:
        check_model_source(name_or_path)
        foreign = ["the hub repository's"]
    if foreign:
        if trust_remote_code:
            print(f"{name_or_path}: running the model's own code (--trust_remote_code)", file=sys.stderr)
        try:  # a hub id without --trust_remote_code: transformers refuses custom code, with its reason
            config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as err:
            raise InputError(name_or_path, None, f"cannot load a model config: {first_line(err)}") from None
        if config.model_type != "gffmoe":
            raise InputError(name_or_path, None, f"model_type {config.model_type!r} is not 'gffmoe'")
        model_class, options = AutoModelForSeq2SeqLM, {"trust_remote_code": trust_remote_code}
    else:
        model_class, options = GffMoeForConditionalGeneration, {}
    try:
        tokenizer = read_tokenizer(name_or_path)
        check_gff_vocabulary(tokenizer, name_or_path)
    except TokenizerError as err:
        raise InputError(name_or_path, None, str(err).removeprefix(f"{name_or_path}: ")) from None
    if not foreign:
        print(f"{name_or_path}: the model's code is this GFF-MoE's own; none of it is run", file=sys.stderr)
    try:
        model = model_class.from_pretrained(name_or_path, dtype=dtype, **options)
    except LOAD_ERRORS as err:
        raise InputError(name_or_path, None, f"cannot load the model: {first_line(err)}") from None
    return model.to(device), tokenizer


def check_writable(path: Path, inputs: list[Path]) -> None:
    """A writable output file that is none of the run's `inputs` (by samefile: links and aliases too)."""
    if path.is_file() and any(source.exists() and path.samefile(source) for source in inputs):
        raise InputError(path, None, "is an input of this run: refusing to overwrite it")
    if path.is_dir():
        raise InputError(path, None, "is a directory, not an output file")
    if not path.parent.is_dir():
        raise InputError(path, None, f"cannot write: folder {path.parent} does not exist")
    probe = path.parent / f".{path.name}.probe"
    try:
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise InputError(path, None, f"cannot write: {err.strerror or err}") from None


DTYPES = ("auto", "float32", "bfloat16", "float16")
MAX_CPU_WORKERS = 8  # each holds a model and its batches in flight


def cpu_workers() -> int:
    """--workers' default on CPU: one per core this process may run on, at most MAX_CPU_WORKERS."""
    return min(len(os.sched_getaffinity(0)), MAX_CPU_WORKERS)


def model_dtype(name: str, device: str) -> torch.dtype:
    """`--dtype`: "auto" is bfloat16 where a CUDA device computes in it natively, float32 elsewhere (CPU)."""
    if name == "auto":
        native = device.startswith("cuda") and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if native else torch.float32
    return getattr(torch, name)


def add_option(parser: argparse.ArgumentParser, name: str, *flags: str, **settings) -> argparse.Action:
    """The flag (`--name` unless `flags` are given) of AnnotationOptions field `name`: its default and help
    are the field's, so that the command line and the library cannot drift apart."""
    option = OPTIONS[name]
    settings.setdefault("help", option.metadata["help"].replace("%", "%%"))  # argparse formats help with %
    return parser.add_argument(*(flags or [f"--{name}"]), dest=name, default=option.default, **settings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="GFF-MoE model directory or hub id")
    parser.add_argument("--fasta", required=True, type=Path, help="genome FASTA (plain or .gz)")
    parser.add_argument("--out", required=True, type=Path, help="output GFF3 (.gz compresses)")
    add_option(parser, "taxon", choices=list(TAXA))
    add_option(parser, "batch_size", type=positive_int)
    add_option(parser, "num_beams", type=positive_int)
    parser.add_argument(
        "--hints",
        type=Path,
        help="evidence GFF3/GTF (e.g. RNA-seq or protein alignments, a previous annotation) the encoder "
        "reads beside the DNA, as AUGUSTUS hints; its seqids must be in the FASTA",
    )
    parser.add_argument(
        "--device",
        type=device,
        help="cpu, cuda or cuda:N (a device this machine has; default: the accelerator accelerate picks, under "
        "`accelerate launch` each process's own GPU, else cpu)",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        help=f"CPU processes decoding batches of windows, one torch thread each (default: one per core, at "
        f"most {MAX_CPU_WORKERS}; 1 on a GPU or under accelerate launch, whose processes share the windows). "
        "Decoding is many small operations: on 2 idle cores two workers annotated 2.1x as fast as one, two "
        "torch threads in one process 1.25x (and 30x slower while another job kept a core busy)",
    )
    parser.add_argument(
        "--dtype",
        choices=DTYPES,
        default="auto",
        help="weights and compute (default auto: bfloat16 on a CUDA device that supports it, else float32)",
    )
    add_option(
        parser, "constraints", "--no_constraints", action="store_false", help="plain decoding (ablation)"
    )
    add_option(parser, "genetic_code", type=int, choices=sorted(unambiguous_dna_by_id), metavar="TABLE")
    coding_genes = add_option(parser, "coding_genes", action=SnakeBooleanAction)
    old_spelling(parser, coding_genes, "--no-coding_genes", "--no_coding_genes")
    add_option(parser, "min_coding_length", type=positive_int)
    add_option(parser, "choose_starts", action=SnakeBooleanAction)
    add_option(parser, "track_weight", type=non_negative_float)
    both_strands = add_option(parser, "both_strands", action=SnakeBooleanAction)
    old_spelling(parser, both_strands, "--no-both_strands", "--no_both_strands")
    parser.add_argument(
        "--track",
        type=Path,
        help="also write the per-base coding probability of each strand, from the model's track head, as "
        "bedGraph (two track sections: + and - strand; .gz compresses)",
    )
    add_option(parser, "window_size", type=positive_int)
    add_option(parser, "overlap", type=non_negative_int)
    add_option(parser, "max_gene_overlap", type=non_negative_int)
    add_option(parser, "long_orfs", type=non_negative_int)
    add_option(parser, "max_new_tokens", type=positive_int)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--trust_remote_code",
        action="store_true",
        help="run the Python code of a model whose code is not this GFF-MoE's own (a hub id, another "
        "version, an edited file); without it such a model is refused. A directory saved by this project "
        "loads with GFF-MoE's own classes and needs no flag",
    )
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.options = AnnotationOptions(**{name: getattr(args, name) for name in OPTIONS})
    except OptionError as err:  # what argparse cannot check alone: --overlap against the window size
        parser.error(f"argument --{err.path}: {err.message}")
    return args


def annotate(argv=None) -> None:
    args = parse_args(argv)
    if args.quiet:  # transformers' own bars too (loading weights)
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    # One process, or one of `accelerate launch`'s: they share the windows, the first one writes. On CPU
    # processes when there is no GPU, the flag read as accelerate's Accelerator reads it.
    use_cpu_processes_without_gpus()
    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
    model_files = list(Path(args.model).iterdir()) if Path(args.model).is_dir() else []
    for output in filter(None, [args.out, args.track]) if state.is_main_process else ():
        check_writable(output, [args.fasta, *filter(None, [args.hints]), *model_files])
        if output.exists():
            print(f"note: {output} exists and will be replaced", file=sys.stderr)
    # A first pass validates the whole FASTA before the model loads, holding only the lengths (the GFF3's
    # sequence regions come first); the annotation streams the FASTA again, one contig at a time.
    lengths = fasta_lengths(args.fasta)
    hints = None
    if args.hints:
        hint_file = read_hints(args.hints, lengths)
        hints = hint_file.genes_by_seqid
        print(f"hints: {hint_file.report.summary()}", file=sys.stderr)
    device_name = args.device or str(state.device)
    dtype = model_dtype(args.dtype, device_name)
    alone_on_cpu = device_name == "cpu" and state.num_processes == 1
    if (args.workers or 1) > 1 and not alone_on_cpu:
        build_parser().error("argument --workers: more than one is for CPU runs (GPUs: accelerate launch)")
    workers = args.workers or (cpu_workers() if alone_on_cpu else 1)
    if device_name == "cpu":
        torch.set_num_threads(1)
    model, tokenizer = load_model(args.model, device_name, args.trust_remote_code, dtype)
    if args.track and not hasattr(model, "track_head"):
        raise InputError(
            args.model, None, "has no track head (trained without --track_loss_weight): no --track"
        )
    options = args.options.for_model(model.config)
    if state.is_main_process:
        print(settings_line(options) + f"; {workers} worker(s)", file=sys.stderr)
    stats = AnnotationStats()
    contigs = annotate_contigs(
        model,
        tokenizer,
        read_fasta(args.fasta),
        options,
        stats,
        hints=hints,
        progress=not args.quiet,
        coding_track=args.track is not None,
        workers=workers,
    )
    if state.is_main_process:
        coding = {}  # --track: each contig's per-base track, for the two bedGraph sections written after
        write_atomically(args.out, gff3_stream(contigs, lengths, coding if args.track else None))
        if args.track:
            write_bedgraph(
                args.track, coding, ["GFF-MoE coding probability +", "GFF-MoE coding probability -"]
            )
        print(stats.summary() + (f"; {state.num_processes} processes" if state.num_processes > 1 else ""))
        print(f"wrote {args.out}" + (f" and {args.track}" if args.track else ""))
    else:
        for _ in contigs:  # every process takes part in every batch's gathering
            pass
    state.destroy_process_group()  # the launched script then leaves through exit_launched


def settings_line(options: AnnotationOptions) -> str:
    """What the run decodes with, the model's defaults resolved: one line for the log."""
    strands = "both strands" if options.both_strands else "one strand"
    return (
        f"annotating as {options.taxon_name}: {options.window_bp:,} bp windows overlapping {options.overlap_bp:,} "
        f"bp, {options.beams} beam(s), {strands}, genetic code {options.translation_table}"
        + (
            f", coding genes snapped to {'spliced ' if options.spliced_genes else ''}ORFs of >= "
            f"{options.min_coding_length} bp"
            if options.coding_genes and options.constraints
            else ""
        )
    )


def gff3_stream(
    contigs: Iterator[AnnotatedContig], lengths: dict[str, int], coding: dict | None
) -> Iterator[str]:
    """GFF3 lines of the contigs as they come (`lengths`: every sequence, for the header); each contig's
    coding track kept in `coding` when it is given."""
    yield from gff3_header(lengths)
    for contig in contigs:
        yield from gff3_contig_lines(contig.seqid, contig.length, contig.genes, scores=contig.scores)
        if coding is not None:
            coding[contig.seqid] = contig.coding


def main(argv=None) -> int:
    return run_cli(PROG, annotate, argv)


if __name__ == "__main__":
    exit_launched(main())
