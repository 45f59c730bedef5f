"""`make demo`: the whole GFF-MoE recipe on a real genome, under 15 minutes on 2 CPU cores.

    python demo.py                                     # embedded genome, Prodigal's (silver) labels
    python demo.py --fasta genome.fa --gff genes.gff3  # your genome and its annotation
    make demo DEMO_FASTA=genome.fa DEMO_GFF=genes.gff3
    make demo TAXON=unicellular DEMO_FASTA=yeast.fa [DEMO_GFF=yeast.gff3]  # a eukaryote (AUGUSTUS's labels
                                                                            # without DEMO_GFF)

The end of the longest sequence is held out; the rest is baked into training windows. Each stage then
runs the command a user runs at scale (printed as it goes, its output logged under OUTPUT_DIR/work/logs):

    1. bake        python -m dataset_builder bake TRAIN.fna [TRAIN.gff3] --taxon TAXON ...
    2. tokenizer   python -m tokenization build_tk ... (DNABERT-2's when DNABERT_PATH is set, else a BPE)
    3. model       python init_model.py ... (from DNABERT-2 weights when DNABERT_PATH is set, else small)
    4. train       accelerate launch --config_file accelerate_configs/cpu_ddp.yaml train.py ...
    5. annotate    python annotate.py --model OUTPUT_DIR/model --fasta HELDOUT.fna ... (constrained decoding)
    6. score       against the held-out labels, beside the taxon's classical gene finder (Prodigal for
                   prokaryotes, AUGUSTUS for eukaryotes) and the ORF floor
    7. outputs     GFF3 checked with `gt gff3validator`, scores.json, a genome-track PNG (exons as boxes, introns
                   as lines; with --track_loss_weight: the model's coding probability as bedGraph and a lane)

The default genome is Corynebacterium diphtheriae NCTC11397, shipped inside pyrodigal's test data. It has
no curated annotation there, so its labels are Prodigal's own gene calls ("silver" labels). No eukaryote
genome ships with the installed packages: a eukaryote demo (--taxon) runs on your FASTA, labelled by your
GFF or else by AUGUSTUS's calls (--augustus_species, default per taxon: saccharomyces for unicellular).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from Bio.Seq import Seq
from Bio.SeqIO import write as write_fasta
from Bio.SeqRecord import SeqRecord

from core.features import Gene
from core.taxa import AUGUSTUS_SPECIES, TAXA
from dataset_builder.windows import GeneClusters
from genome_io.baselines import augustus_genes, orf_floor_genes, prodigal_genes
from genome_io.cli import old_spelling, run_cli
from genome_io.fasta import read_fasta
from genome_io.gff import read_gff
from genome_io.gff3_writer import write_gff3

ROOT = Path(__file__).resolve().parent
DEFAULT_GENOME = ("pyrodigal.tests.data", "GCF_001457455.1_NCTC11397_genomic.fna.gz")
DEFAULT_GENOME_NAME = "Corynebacterium diphtheriae NCTC11397 (pyrodigal's test data)"
STAGES = 7
PRODIGAL_PREFERRED_BP = 100_000  # pyrodigal warns below this much training sequence
# A timed step in this process is cheaper than a DDP step (gloo all-reduce, DDP's unused-parameter
# pass, Trainer bookkeeping); rough factor, the demo prints the real training time afterwards.
DDP_STEP_OVERHEAD = 1.5
LEARNING_RATE = 1.5e-3
# With setup from a fresh clone (~2 min) and annotating both strands (~1.5 min), 15 minutes in all on 2 cores.
TRAIN_MINUTES = 9.0
# Annotation runs at annotate.py's defaults for the demo's model (the window it trained on, greedy, both
# strands, genes >= 300 bp): 8 beams were 3x slower and no better over two demo models (bench/annotate.py).
# Nine minutes of training underfit: dropout (DNABERT-2's 0.1) only slows learning, and takes ~8 % of a step.
DROPOUT = 0.0
HOLDOUT_BP = 100_000  # default held-out length, at most 10% of the longest sequence (~100 genes)
# Eukaryote genes are longer than a 3 kbp window (S. pombe's median mRNA spans ~1.4 kbp, its introns
# included, and many run past 3 kbp): the small model reads 5 kbp windows there, as bench/train_real.py.
EUKARYOTE_WINDOW_BP = 5000
AUGUSTUS_BP_PER_S = 5000  # about, on one core (README's AUGUSTUS rows): to say how long its labels take
NEW_TYPES = "new_feature_types.txt"  # bake --extract_tokens -> build_tk --tokens
CODING_TRACK = "coding.bedgraph"  # with a track head: annotate.py --track, drawn as a lane of the PNG
# train.py's progress lines (training/callbacks.py TrainingProgressCallback), shown while the demo trains.
PROGRESS_LINE = re.compile(r"step \d+/\d+ ")


PROG = "demo.py"


class DemoError(Exception):
    """A problem the demo reports in one line before exiting with status 2."""


@dataclass(frozen=True)
class GeneFinder:
    """The taxon's classical gene finder: the silver labels of a genome without annotation, and the
    baseline column beside GFF-MoE."""

    labels: str  # "prodigal" or "augustus": dataset_builder bake --labels, scoring --baseline
    species: str | None = None  # AUGUSTUS's parameter set

    @property
    def name(self) -> str:
        """As the tables name it."""
        return "AUGUSTUS" if self.species else "Prodigal"

    @property
    def named(self) -> str:
        """The name with the parameter set: 'AUGUSTUS (saccharomyces)'."""
        return self.name + (f" ({self.species})" if self.species else "")

    @property
    def options(self) -> tuple[str, ...]:
        """What scoring needs besides `--baseline labels`."""
        return ("--augustus_species", self.species) if self.species else ()

    @property
    def silver_note(self) -> str:
        return f"labels: {self.named}'s own gene calls (silver labels), not a curated annotation"

    def genes(self, records: list[tuple[str, str]]) -> dict[str, list[Gene]]:
        return augustus_genes(records, self.species) if self.species else prodigal_genes(records)


def gene_finder(taxon: str, augustus_species: str | None = None) -> GeneFinder:
    """Prodigal (pyrodigal) for prokaryotes; AUGUSTUS with `augustus_species` (default: the taxon's) else."""
    if taxon == "prokaryotes":
        return GeneFinder("prodigal")
    return GeneFinder("augustus", augustus_species or AUGUSTUS_SPECIES[taxon])


@dataclass(frozen=True)
class ModelSize:
    """init_model.py options of the random model, and the training batch that suits it on 2 cores."""

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    decoder_layers: int
    num_experts: int
    window_bp: int  # bake and annotation window length
    batch_size: int  # per process
    bpe_vocab: int

    def init_args(self) -> list[str]:
        """init_model.py options for this size (MoE decoder with top-2 routing, tied output head)."""
        names = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
        names += ("decoder_layers", "num_experts")
        return [f"--{name}={getattr(self, name)}" for name in names] + [
            "--use_moe",
            "--moe_top_k=2",
            "--tie_weights",
            f"--hidden_dropout_prob={DROPOUT}",
        ]


SMALL = ModelSize(128, 3, 4, 256, 2, 4, window_bp=3000, batch_size=8, bpe_vocab=4096)
TINY = ModelSize(32, 1, 2, 64, 1, 2, window_bp=2000, batch_size=4, bpe_vocab=512)


# --- the genome and its held-out region -------------------------------------------------------------


def default_genome() -> Path:
    """The embedded genome file, or a DemoError that says how to run the demo on your own data."""
    package, name = DEFAULT_GENOME
    try:
        path = resources.files(package) / name
        found = path.is_file()
    except ModuleNotFoundError:
        found = False
    if not found:
        raise DemoError(
            f"the embedded genome {name} is not in this pyrodigal's package data ({package}); "
            "run the demo on your own genome: make demo DEMO_FASTA=genome.fa DEMO_GFF=genes.gff3"
        )
    return Path(str(path))


@dataclass(frozen=True)
class HeldOut:
    seqid: str
    start: int  # 1-based first base of the held-out region on the original sequence
    end: int
    sequence: str
    genes: list[Gene]  # 1-based on the held-out sequence (its first base is 1)


def split_genome(
    records: list[tuple[str, str]], genes_by_seqid: dict[str, list[Gene]], holdout_bp: int
) -> tuple[list[tuple[str, str]], dict[str, list[Gene]], HeldOut]:
    """Training records and genes, and the held-out end of the longest sequence (cut between genes)."""
    seqid, sequence = max(records, key=lambda r: len(r[1]))
    genes = genes_by_seqid.get(seqid, [])
    cut = GeneClusters(genes).last_clean(1, len(sequence) - holdout_bp + 1)
    if cut <= len(sequence) // 2:
        raise DemoError(
            f"cannot hold out {holdout_bp:,} bp of {seqid} ({len(sequence):,} bp) and keep most of it for "
            "training; lower --holdout_bp"
        )
    held_out = HeldOut(
        seqid, cut, len(sequence), sequence[cut - 1 :], [g.shift(1 - cut) for g in genes if g.start >= cut]
    )
    train_records = [(s, seq[: cut - 1] if s == seqid else seq) for s, seq in records]
    train_genes = {s: [g for g in gs if s != seqid or g.end < cut] for s, gs in genes_by_seqid.items()}
    return train_records, train_genes, held_out


def save_fasta(records: list[tuple[str, str]], path: Path) -> Path:
    write_fasta((SeqRecord(Seq(seq), id=seqid, description="") for seqid, seq in records), path, "fasta")
    return path


def truncate(records: list[tuple[str, str]], genome_bp: int) -> list[tuple[str, str]]:
    """The first `genome_bp` bases of the genome, in file order (for quick runs)."""
    kept, left = [], genome_bp
    for seqid, sequence in records:
        if left <= 0:
            break
        kept.append((seqid, sequence[:left]))
        left -= len(sequence)
    return kept


@dataclass(frozen=True)
class PreparedGenome:
    train_fasta: Path
    train_gff: Path | None  # None: the baker labels the training part with Prodigal (bake --labels prodigal)
    heldout_fasta: Path
    reference_gff: Path  # the held-out labels
    held_out: HeldOut


def prepare_genome(
    fasta: Path,
    gff: Path | None,
    out: Path,
    work: Path,
    holdout_bp: int | None = None,
    genome_bp: int | None = None,
    finder: GeneFinder | None = None,
) -> PreparedGenome:
    """Label the genome (the GFF, else the gene finder's calls: Prodigal by default), hold out the end of its
    longest sequence, write the parts."""
    finder = finder or gene_finder("prokaryotes")
    records = list(read_fasta(fasta))
    if genome_bp:
        records = truncate(records, genome_bp)
    if gff is None:
        print(f"      {finder.silver_note}")
        if finder.labels == "augustus":
            bp = sum(len(sequence) for _, sequence in records)
            print(f"      AUGUSTUS labels {bp:,} bp: about {bp / AUGUSTUS_BP_PER_S / 60:.0f} min", flush=True)
        genes = finder.genes(records)
    else:
        result = read_gff(gff, {seqid: len(seq) for seqid, seq in records})
        print(f"      {gff}: {result.report.summary()}")
        genes = result.genes_by_seqid
    longest = max(len(seq) for _, seq in records)
    train_records, train_genes, held_out = split_genome(
        records, genes, holdout_bp or min(longest // 10, HOLDOUT_BP)
    )
    print(
        f"      held out {held_out.seqid}:{held_out.start:,}-{held_out.end:,} "
        f"({len(held_out.sequence):,} bp, {len(held_out.genes)} genes), cut between genes"
    )
    train_gff = None
    # Prodigal labels the training part again as the baker runs it (bake --labels prodigal, a second or
    # two); AUGUSTUS's calls (minutes) are written out once instead.
    if gff is not None or finder.labels != "prodigal":
        train_gff = work / "train.gff3"
        write_gff3(train_genes, {seqid: len(seq) for seqid, seq in train_records}, train_gff)
    reference_gff = out / "heldout_reference.gff3"
    write_gff3({held_out.seqid: held_out.genes}, {held_out.seqid: len(held_out.sequence)}, reference_gff)
    return PreparedGenome(
        save_fasta(train_records, work / "train.fna"),
        train_gff,
        save_fasta([(held_out.seqid, held_out.sequence)], out / "heldout.fna"),
        reference_gff,
        held_out,
    )


# --- running the stages -----------------------------------------------------------------------------


class Stages:
    """Numbered progress lines with the time each stage took; runs the commands, logging their output."""

    def __init__(self, log_dir: Path, verbose: bool):
        self.log_dir, self.verbose = log_dir, verbose
        self.number, self.timings = 0, {}
        log_dir.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def stage(self, name: str, title: str):
        self.number += 1
        print(f"\n[{self.number}/{STAGES}] {title}", flush=True)
        started = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - started, 1)
        print(f"      done in {self.timings[name]:.1f} s", flush=True)

    def run(
        self,
        name: str,
        command: list[str],
        show_last: int = 0,
        env: dict | None = None,
        echo: re.Pattern | None = None,
    ) -> str:
        """Run one command from the repository root; its output goes to a log (and the terminal if verbose,
        else only the lines `echo` matches, as they come: training's progress lines)."""
        print("      $ " + shlex.join(command), flush=True)
        log = self.log_dir / f"{self.number}_{name}.log"
        environment = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "TOKENIZERS_PARALLELISM": "false",
            **(env or {}),
        }
        with open(log, "w") as fh:
            process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=environment,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for line in process.stdout:
                fh.write(line)
                if self.verbose or (echo is not None and echo.match(line)):
                    print("      | " + line, end="", flush=True)
            process.wait()
        output = log.read_text()
        if process.returncode != 0:
            tail = "\n".join("      | " + line for line in output.splitlines()[-15:])
            print(tail, file=sys.stderr)
            raise DemoError(f"stage {name} failed (exit status {process.returncode}); full log: {log}")
        if show_last and not self.verbose:
            lines = [
                line for line in output.splitlines() if line.strip() and "\r" not in line and "%|" not in line
            ]
            for line in lines[-show_last:]:
                print("      " + line)
        return output


def python(*args) -> list[str]:
    return [sys.executable, *map(str, args)]


def train_command(launcher: str, train_args: list[str]) -> list[str]:
    if launcher == "accelerate":
        config = ROOT / "accelerate_configs" / "cpu_ddp.yaml"
        # A port free now, not the config's fixed one: another launch on this machine (a second demo, a test
        # suite) must not meet this one's rendezvous.
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        return python(
            "-m", "accelerate.commands.launch", "--config_file", config, "--main_process_port", port, "train.py", *train_args
        )  # fmt: skip
    return python("train.py", *train_args)


def seconds_per_step(
    model_dir: Path, tokenizer_dir: Path, dataset_dir: Path, batch_size: int, threads: int, taxon: str
) -> float:
    """Time one optimizer step of the initialised model on a typical batch, to size --max_steps."""
    import datasets
    import torch
    import transformers
    from transformers import AutoModelForSeq2SeqLM

    from tokenization.tokenizer import load_tokenizer
    from training.data import GffMoeCollator, load_windows, prepare_windows

    torch.set_num_threads(threads)
    datasets.disable_progress_bars()  # a one-off measurement: keep the demo's output to its stage lines
    transformers.utils.logging.disable_progress_bar()
    tokenizer = load_tokenizer(tokenizer_dir)
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir, trust_remote_code=True).train()
    config = model.config
    windows, _ = load_windows(dataset_dir, [taxon])
    # Training batches windows of similar length: time a batch of the median length, not a random mix
    # (one long window pads a random batch, and attention grows with the square of its length).
    lengths = [len(sequence) for sequence in windows["sequence"]]
    by_length = sorted(range(len(windows)), key=lengths.__getitem__)
    middle = max(0, len(by_length) // 2 - batch_size // 2)
    windows = windows.select(by_length[middle : middle + batch_size])
    examples = prepare_windows(windows, tokenizer, config.coordinate_scheme, desc="timing a training step")
    batch = GffMoeCollator(pad_token_id=tokenizer.pad_token_id)([examples[i] for i in range(len(examples))])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)  # the Trainer's default
    times = []
    for _ in range(5):
        started = time.perf_counter()
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - started)
    # The first steps pay one-off allocation costs, and one timed step can be slowed by a passing job (a
    # 1.58 s estimate for 1.16 s steps once cost the demo a quarter of its training): the best of four.
    return min(times[1:])


# --- scoring and outputs ----------------------------------------------------------------------------


def score_held_out(held_out: HeldOut, prediction_gff: Path, finder: GeneFinder, taxon: str) -> dict:
    """Scores of GFF-MoE, the gene finder and the ORF floor on the held-out region, and the genes of each."""
    from scoring.metrics import score

    records = [(held_out.seqid, held_out.sequence)]
    # A model that writes no gene is scored (zero), as `python -m scoring` scores it.
    result = read_gff(prediction_gff, {held_out.seqid: len(held_out.sequence)}, allow_empty=True)
    if sum(result.report.dropped.values()):
        raise DemoError(
            f"{prediction_gff}: the annotation did not read back whole ({result.report.summary()})"
        )
    if finder.labels == "prodigal" and len(held_out.sequence) < PRODIGAL_PREFERRED_BP:
        print(
            f"      note: Prodigal trains on the held-out region alone ({len(held_out.sequence):,} bp); "
            f"it prefers at least {PRODIGAL_PREFERRED_BP:,} bp"
        )
    with warnings.catch_warnings():  # the note above says it once, in our words
        warnings.filterwarnings("ignore", message="sequence should be at least", category=UserWarning)
        finder_genes = finder.genes(records)
    predictions = {
        "GFF-MoE": result.genes_by_seqid,
        finder.name: finder_genes,
        "ORF floor": orf_floor_genes(records, taxon),
    }
    reference = {held_out.seqid: held_out.genes}
    return {
        name: (score(reference, genes), genes.get(held_out.seqid, [])) for name, genes in predictions.items()
    }


def validate_gff3(path: Path) -> str:
    """`gt gff3validator` verdict; a DemoError when gt finds the file invalid."""
    gt = shutil.which("gt")
    if gt is None:
        return "not checked (GenomeTools `gt` is not installed)"
    result = subprocess.run([gt, "gff3validator", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        raise DemoError(
            f"{path}: gt gff3validator rejects it: {(result.stderr or result.stdout).strip().splitlines()[-1]}"
        )
    return "valid (gt gff3validator)"


# --- the demo ---------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--fasta", type=Path, help="your genome FASTA (plain or .gz); default: the embedded one"
    )
    parser.add_argument(
        "--gff",
        type=Path,
        help="its annotation, GFF3 or GTF (default: the gene finder's calls, Prodigal's or AUGUSTUS's)",
    )
    parser.add_argument(
        "--taxon",
        choices=tuple(TAXA),
        default="prokaryotes",
        help="the taxon the genome belongs to: its window, constraints and gene finder (default prokaryotes; "
        "a eukaryote taxon needs --fasta)",
    )
    parser.add_argument(
        "--augustus_species",
        help="AUGUSTUS parameter set of a eukaryote demo's labels (without --gff) and baseline column "
        "(default per taxon: "
        + ", ".join(f"{taxon} {species}" for taxon, species in AUGUSTUS_SPECIES.items())
        + ")",
    )
    output_dir = parser.add_argument(
        "--output_dir", type=Path, default=ROOT / "outputs" / "demo", help="where everything goes"
    )
    old_spelling(parser, output_dir, "--out_dir")
    parser.add_argument(
        "--holdout_bp",
        type=int,
        help=f"bp held out at the end of the longest sequence (default: {HOLDOUT_BP:,} or 10%% if less)",
    )
    parser.add_argument("--genome_bp", type=int, help="use only the first N bp of the genome (quick runs)")
    parser.add_argument(
        "--train_minutes",
        type=float,
        default=TRAIN_MINUTES,
        help=f"training budget in minutes (default {TRAIN_MINUTES:g})",
    )
    parser.add_argument(
        "--launcher",
        choices=("accelerate", "python"),
        default="accelerate",
        help="train with 2-process CPU DDP (accelerate launch) or one process",
    )
    parser.add_argument(
        "--tiny", action="store_true", help="a tiny model and short windows (tests, smoke runs)"
    )
    parser.add_argument(
        "--track_loss_weight",
        type=float,
        default=0.0,
        help="weight of the per-base gene-structure track loss (init_model.py's option; 0: no track head)",
    )
    parser.add_argument(
        "--track_weight",
        type=float,
        help="annotate.py's --track_weight: the track's weight in a coding gene's coordinates (a model with a "
        "track head; default: annotate.py's)",
    )
    parser.add_argument(
        "--max_steps",
        type=int,
        help="train exactly this many steps (default: as many as --train_minutes allow); ablations compare "
        "arms at equal steps, whatever else the machine is doing",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="show every command's full output")
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.gff and not args.fasta:
        parser.error("--gff needs --fasta (the genome it annotates)")
    if args.augustus_species and args.taxon == "prokaryotes":
        parser.error("--augustus_species is for a eukaryote --taxon (prokaryotes are compared with Prodigal)")
    return args


@dataclass(frozen=True)
class DemoSetup:
    """What every stage reads: the options, where things go, the model size and the genome."""

    args: argparse.Namespace
    out: Path
    work: Path
    size: ModelSize
    dnabert: str | None  # DNABERT_PATH: initialise from DNABERT-2 instead of a small random model
    fasta: Path
    genome_name: str
    silver: bool  # no annotation given: the labels are the gene finder's calls
    taxon: str
    finder: GeneFinder  # Prodigal or AUGUSTUS: silver labels and the baseline column


@dataclass(frozen=True)
class Trained:
    model_dir: Path
    max_steps: int
    seconds_per_step: float
    results: dict  # train.py's train_results.json


def demo(args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    setup = get_setup(args)
    stages = Stages(setup.work / "logs", args.verbose)
    genome, dataset_dir = bake_stage(setup, stages)
    tokenizer_dir = tokenizer_stage(setup, stages, genome)
    init_dir = model_stage(setup, stages, tokenizer_dir)
    trained = train_stage(setup, stages, init_dir, tokenizer_dir, dataset_dir)
    prediction_gff = annotate_stage(setup, stages, genome, trained.model_dir)
    results = score_stage(setup, stages, genome, prediction_gff, trained.model_dir)
    summary = outputs_stage(setup, stages, genome, trained, prediction_gff, results)
    summary["timings_s"]["total"] = round(time.perf_counter() - started, 1)
    (setup.out / "scores.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\ndemo finished in {summary['timings_s']['total'] / 60:.1f} min")
    return summary


def get_setup(args: argparse.Namespace) -> DemoSetup:
    """The run's settings; a clean work directory (a re-run starts clean; the other outputs are overwritten)."""
    if args.taxon != "prokaryotes" and not args.fasta:
        raise DemoError(
            f"no {args.taxon} genome ships with the demo; run it on yours: make demo TAXON={args.taxon} "
            "DEMO_FASTA=genome.fa [DEMO_GFF=genes.gff3] (without DEMO_GFF, AUGUSTUS's calls are the labels)"
        )
    out, work = args.output_dir, args.output_dir / "work"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    fasta = args.fasta or default_genome()
    size = TINY if args.tiny else SMALL
    if args.taxon != "prokaryotes" and not args.tiny:
        size = replace(size, window_bp=EUKARYOTE_WINDOW_BP)
    return DemoSetup(
        args=args,
        out=out,
        work=work,
        size=size,
        dnabert=os.environ.get("DNABERT_PATH"),
        fasta=fasta,
        genome_name=fasta.name if args.fasta else DEFAULT_GENOME_NAME,
        silver=args.gff is None,
        taxon=args.taxon,
        finder=gene_finder(args.taxon, args.augustus_species),
    )


def bake_stage(setup: DemoSetup, stages: Stages) -> tuple[PreparedGenome, Path]:
    args, size = setup.args, setup.size
    with stages.stage("bake", f"Bake {setup.genome_name} into training windows, holding out a test region"):
        genome = prepare_genome(
            setup.fasta, args.gff, setup.out, setup.work, args.holdout_bp, args.genome_bp, setup.finder
        )
        dataset_dir = setup.work / "dataset"
        stages.run(
            "bake",
            python(
                "-m", "dataset_builder", "bake", genome.train_fasta, *([genome.train_gff] if genome.train_gff else ["--labels", "prodigal"]),
                "--taxon", setup.taxon, "--species", "demo", "--limit", size.window_bp, "--rc_augment",
                "--val_fraction", 0, "--test_fraction", 0, "--dataset_dir", dataset_dir, "--quiet",
                "--extract_tokens", setup.work / NEW_TYPES,
            ),
            show_last=4,
        )  # fmt: skip
    return genome, dataset_dir


def tokenizer_stage(setup: DemoSetup, stages: Stages, genome: PreparedGenome) -> Path:
    dnabert = setup.dnabert
    with stages.stage(
        "tokenizer", "Build the tokenizer" + (" (DNABERT-2's)" if dnabert else " (BPE on the training part)")
    ):
        tokenizer_dir = setup.work / "tokenizer"
        source = (
            ["--dnabert_path", dnabert]
            if dnabert
            else ["--fasta", genome.train_fasta, "--vocab_size", setup.size.bpe_vocab]
        )
        # The annotation's feature types beyond the codec's (e.g. PomBase's nuclear_mt_pseudogene), as baked.
        new_types = ["--tokens", setup.work / NEW_TYPES]
        stages.run(
            "tokenizer",
            python("-m", "tokenization", "build_tk", tokenizer_dir, *source, *new_types),
            show_last=1,
        )
    return tokenizer_dir


def model_stage(setup: DemoSetup, stages: Stages, tokenizer_dir: Path) -> Path:
    args, size, dnabert = setup.args, setup.size, setup.dnabert
    with stages.stage(
        "model", "Initialise GFF-MoE" + (" from DNABERT-2" if dnabert else " (small, random weights)")
    ):
        init_dir = setup.work / "init_model"
        weights = (
            ["--dnabert_path", dnabert, "--decoder_layers", size.decoder_layers, "--use_moe"]
            + ["--hidden_dropout_prob", DROPOUT]
            if dnabert
            else size.init_args()
        )
        stages.run(
            "model",
            python(
                "init_model.py",
                "--save_dir",
                init_dir,
                "--tokenizer",
                tokenizer_dir,
                *weights,
                "--seed",
                args.seed,
                "--track_loss_weight",
                args.track_loss_weight,
            ),
            show_last=1,
        )
    return init_dir


def train_stage(
    setup: DemoSetup, stages: Stages, init_dir: Path, tokenizer_dir: Path, dataset_dir: Path
) -> Trained:
    args, size = setup.args, setup.size
    processes = 2 if args.launcher == "accelerate" else 1
    with stages.stage(
        "train", f"Train for {args.train_minutes:g} min ({args.launcher}, {processes} process(es))"
    ):
        step_s = seconds_per_step(
            init_dir, tokenizer_dir, dataset_dir, size.batch_size, 1 if processes == 2 else 2, setup.taxon
        )
        if processes == 2:
            step_s *= DDP_STEP_OVERHEAD
        max_steps = args.max_steps or max(2, int(args.train_minutes * 60 / step_s))
        print(f"      one step should take {step_s:.2f} s here: --max_steps {max_steps}")
        model_dir = setup.out / "model"
        train_args = [
            "--model_name_or_path", init_dir, "--dataset_dir", dataset_dir, "--dataset_config", setup.taxon,
            "--output_dir", model_dir, "--max_steps", max_steps, "--per_device_train_batch_size", size.batch_size,
            "--learning_rate", LEARNING_RATE, "--warmup_steps", "0.05", "--weight_decay", "0.01",
            "--logging_steps", max(1, max_steps // 20), "--save_strategy", "no", "--report_to", "none",
            "--seed", args.seed, "--disable_tqdm", "true", "--use_cpu", "true", "--dataloader_num_workers", 0,
        ]  # fmt: skip
        if not args.max_steps:  # the step estimate is rough: cap the time
            train_args += ["--max_train_seconds", round(args.train_minutes * 60)]
        stages.run("train", train_command(args.launcher, train_args), echo=PROGRESS_LINE)
        results = json.loads((model_dir / "train_results.json").read_text())
        print(
            f"      {max_steps} steps in {float(results['train_runtime']) / 60:.1f} min, "
            f"final training loss {float(results['train_loss']):.3f}"
        )
    return Trained(model_dir, max_steps, step_s, results)


def annotate_stage(setup: DemoSetup, stages: Stages, genome: PreparedGenome, model_dir: Path) -> Path:
    args, held_out = setup.args, genome.held_out
    with stages.stage(
        "annotate", f"Annotate the held-out region ({len(held_out.sequence):,} bp, constrained decoding)"
    ):
        prediction_gff = setup.out / "annotation.gff3"
        stages.run(
            "annotate",
            python(
                "annotate.py", "--model", model_dir, "--fasta", genome.heldout_fasta, "--out", prediction_gff,
                "--taxon", setup.taxon, "--device", "cpu", "--quiet",
                *(["--track_weight", args.track_weight] if args.track_weight is not None else []),
                *(["--track", setup.out / CODING_TRACK] if args.track_loss_weight else []),
            ),
            show_last=2,
        )  # fmt: skip
    return prediction_gff


def score_stage(
    setup: DemoSetup, stages: Stages, genome: PreparedGenome, prediction_gff: Path, model_dir: Path
) -> dict:
    finder = setup.finder
    with stages.stage("score", f"Score against the held-out labels, beside {finder.named} and the ORF floor"):
        from scoring.report import format_table
        from training.model_card import add_held_out_scores

        results = score_held_out(genome.held_out, prediction_gff, finder, setup.taxon)
        print(format_table({name: s for name, (s, _) in results.items()}))
        add_held_out_scores(  # the model card shows them, beside the gene finder and the ORF floor
            model_dir,
            sequence=f"{setup.genome_name} {genome.held_out.seqid}:{genome.held_out.start:,}-{genome.held_out.end:,}, held out"
            + (f" (labels: {finder.named}'s calls, silver)" if setup.silver else ""),
            scores={name: s.as_dict() for name, (s, _) in results.items()},
        )
        if setup.silver:
            print(
                f"      {finder.silver_note}: {finder.name}'s column is its agreement with its own "
                "whole-genome calls."
            )
        print(
            "      reproduce: python -m scoring --reference "
            f"{_shown(genome.reference_gff)} --prediction {_shown(prediction_gff)} --fasta {_shown(genome.heldout_fasta)} "
            + shlex.join(["--taxon", setup.taxon, "--baseline", finder.labels, "orf", *finder.options])
        )
    return results


def outputs_stage(
    setup: DemoSetup,
    stages: Stages,
    genome: PreparedGenome,
    trained: Trained,
    prediction_gff: Path,
    results: dict,
) -> dict:
    args, out, held_out, silver = setup.args, setup.out, genome.held_out, setup.silver
    with stages.stage("outputs", f"Write the outputs to {_shown(out)}"):
        from genome_io.bedgraph import read_bedgraph
        from genome_io.plot import plot_gene_tracks

        verdict = validate_gff3(prediction_gff)
        coding_track = out / CODING_TRACK if args.track_loss_weight else None
        plot = plot_gene_tracks(
            {"reference": held_out.genes, **{name: genes for name, (_, genes) in results.items()}},
            len(held_out.sequence),
            out / "genes.png",
            title=f"{held_out.seqid}:{held_out.start:,}-{held_out.end:,} (held out)"
            + (f" - reference = {setup.finder.named}'s calls (silver)" if silver else ""),
            offset=held_out.start - 1,
            coding=read_bedgraph(coding_track, {held_out.seqid: len(held_out.sequence)})[held_out.seqid]
            if coding_track
            else None,
        )
        summary = {
            "genome": str(args.fasta or setup.genome_name),
            "annotation": str(args.gff) if args.gff else None,
            "taxon": setup.taxon,
            "labels": f"{setup.finder.labels} (silver)" if silver else "gff",
            "held_out": {
                "seqid": held_out.seqid,
                "start": held_out.start,
                "end": held_out.end,
                "genes": len(held_out.genes),
            },
            "model": {
                "dnabert_path": setup.dnabert,
                "size": "tiny" if args.tiny else "small",
                "window_bp": setup.size.window_bp,
            },
            "training": {
                "launcher": args.launcher,
                "minutes": args.train_minutes,
                "max_steps": trained.max_steps,
                "seconds_per_step": round(trained.seconds_per_step, 3),
                "runtime_s": round(float(trained.results["train_runtime"]), 1),
                "train_loss": round(float(trained.results["train_loss"]), 4),
            },
            "decoding": decoding_settings(trained.model_dir, setup.taxon, args.track_weight),
            "scores": {name: s.as_dict() for name, (s, _) in results.items()},
            "gff3": verdict,
            "timings_s": stages.timings,
        }
        (out / "scores.json").write_text(json.dumps(summary, indent=2) + "\n")
        for path, what in [
            (
                trained.model_dir,
                "model (Hub-ready: AutoModelForSeq2SeqLM.from_pretrained(DIR, trust_remote_code=True))",
            ),
            (prediction_gff, f"annotation of the held-out region, {verdict}"),
            (genome.reference_gff, "held-out labels" + (f" ({setup.finder.named}'s)" if silver else "")),
            (out / "scores.json", "scores of every predictor at every level, and the timings"),
            (
                plot,
                "genome tracks: reference vs predictions" + (", coding probability" if coding_track else ""),
            ),
            *(
                [(coding_track, "the model's per-base coding probability, both strands (bedGraph)")]
                if coding_track
                else []
            ),
        ]:
            print(f"      {_shown(path):<40} {what}")
    return summary


def decoding_settings(model_dir: Path, taxon: str, track_weight: float | None) -> dict:
    """What annotate.py decoded with: its defaults for the demo's model (the window it trained on, from its
    config.json; the track weight when given)."""
    from types import SimpleNamespace

    from annotation.annotator import AnnotationOptions

    config = SimpleNamespace(**json.loads((model_dir / "config.json").read_text()))
    options = AnnotationOptions(taxon).for_model(config)
    return {
        "window_bp": options.window_bp,
        "overlap_bp": options.overlap_bp,
        "num_beams": options.beams,
        "both_strands": options.both_strands,
        "min_coding_length": options.min_coding_length,
        "max_gene_overlap": options.gene_overlap_limit,
        "long_orfs": options.long_orf_bp,
        "starts": "start scorer" if getattr(config, "start_weights", None) else "longest",
        "track_weight": track_weight if track_weight is not None else options.track_weight,
    }


def _shown(path: Path) -> str:
    """A path relative to the working directory when it is inside it (shorter to read and to paste)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main(argv=None) -> int:
    return run_cli(PROG, lambda argv: demo(parse_args(argv)), argv, errors=(DemoError,))


if __name__ == "__main__":
    sys.exit(main())
