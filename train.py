"""Train GFF-MoE with transformers' Seq2SeqTrainer, from one CPU to many GPU nodes.

    python train.py --model_name_or_path ./tiny_model --dataset_dir ./dataset_builder \
        --dataset_config prokaryotes --output_dir ./outputs/run1
    accelerate launch --config_file accelerate_configs/multinode.yaml train.py config.yaml
    MASTER_ADDR=10.0.0.1 NNODES=2 NODE_RANK=0 ./accelerate_configs/launch_distributed.sh config.yaml

Arguments come from the command line or from one YAML / JSON file (keys = argument names). Every
`Seq2SeqTrainingArguments` option works (`--resume_from_checkpoint`, `--save_total_limit`, `--push_to_hub`,
`--report_to tensorboard`, ...). Bad arguments fail with one line and exit status 2 before any heavy work.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import torch
import transformers
from accelerate import PartialState
from transformers import (
    AutoConfig,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    HfArgumentParser,
    Seq2SeqTrainingArguments,
)

from core.errors import InputError, first_line
from genome_io.cli import check_model_source, run_cli, use_cpu_processes_without_gpus
from hub_code import save_hub_code

PROG = "train.py"
logger = logging.getLogger("train")


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        metadata={"help": "A directory written by init_model.py (or a saved run), or a Hub model id."}
    )
    tokenizer_name_or_path: str | None = field(
        default=None, metadata={"help": "Tokenizer directory or Hub id; defaults to --model_name_or_path."}
    )
    lora_r: int = field(
        default=0,
        metadata={"help": "LoRA rank (PEFT) to adapt a checkpoint to a new taxon; 0 trains all weights."},
    )
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling numerator."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA branch."})
    lora_target_modules: str = field(
        default="all-linear",
        metadata={"help": "Comma-separated module names LoRA wraps, or 'all-linear' (PEFT's shortcut)."},
    )


@dataclass
class DataArguments:
    dataset_dir: str = field(
        default="./dataset_builder",
        metadata={"help": "Directory of a baked dataset (python -m dataset_builder bake)."},
    )
    dataset_config: list[str] = field(
        default_factory=lambda: ["prokaryotes"],
        metadata={"help": "Taxon config(s) to train on; several are interleaved (see --dataset_weights)."},
    )
    dataset_weights: list[float] | None = field(
        default=None,
        metadata={
            "help": "Sampling weight of each --dataset_config (default: in proportion to their sizes)."
        },
    )
    max_source_tokens: int | None = field(
        default=None,
        metadata={"help": "Truncate window DNA to this many tokens (genes beyond are cut, open)."},
    )
    max_target_tokens: int | None = field(
        default=None, metadata={"help": "Truncate targets to this many tokens."}
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N training windows."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N validation windows."}
    )
    preprocessing_num_workers: int | None = field(
        default=None, metadata={"help": "Processes for tokenizing the windows (datasets.map num_proc)."}
    )


@dataclass
class GffMoeTrainingArguments(Seq2SeqTrainingArguments):
    """Seq2SeqTrainingArguments with defaults that suit gene annotation."""

    # Windows vary from a few hundred to thousands of tokens: batch similar lengths to keep padding low.
    train_sampling_strategy: str = field(
        default="group_by_length",
        metadata={"help": "'group_by_length' (default), 'random', 'sequential' or 'batch_rebalance'."},
    )
    # The length column must survive to the sampler; the collator picks the model's columns itself.
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Keep dataset columns (default False)."}
    )
    predict_with_generate: bool = field(
        default=True, metadata={"help": "Evaluate annotation F1 on generated windows (default True)."}
    )
    save_total_limit: int | None = field(
        default=2, metadata={"help": "Checkpoints kept in output_dir (default 2)."}
    )
    max_train_seconds: float | None = field(
        default=None, metadata={"help": "Stop training after this many seconds (a fixed compute budget)."}
    )
    # Pinned host memory only speeds copies to an accelerator; without one torch warns at every DataLoader.
    dataloader_pin_memory: bool = field(
        default_factory=torch.accelerator.is_available,
        metadata={"help": "Pin host memory for copies to an accelerator (default: where there is one)."},
    )


def build_parser() -> HfArgumentParser:
    return HfArgumentParser(
        (ModelArguments, DataArguments, GffMoeTrainingArguments), prog=PROG, description=__doc__
    )


def parse_args(
    argv: list[str] | None = None,
) -> tuple[ModelArguments, DataArguments, GffMoeTrainingArguments]:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml", ".json")):
        path = Path(argv[0]).resolve()
        if not path.is_file():
            raise InputError(path, None, "no such configuration file")
        if path.suffix == ".json":
            return parser.parse_json_file(path)
        return parser.parse_yaml_file(path)
    return parser.parse_args_into_dataclasses(argv)


def check_arguments(model_args: ModelArguments, data_args: DataArguments):
    """Everything cheap that can be wrong, checked before any model or data is loaded.

    Returns the model config and the tokenizer; raises InputError with a one-line message.
    """
    from core.taxa import TAXA
    from training.data import dataset_configs

    available = dataset_configs(data_args.dataset_dir)
    for config_name in data_args.dataset_config:
        if config_name not in TAXA:
            raise InputError(
                data_args.dataset_dir, None, f"unknown taxon {config_name!r} (taxa: {', '.join(TAXA)})"
            )
        if config_name not in available:
            raise InputError(
                data_args.dataset_dir,
                None,
                f"no dataset config {config_name!r} here (baked: {', '.join(available) or 'none'})",
            )
    weights = data_args.dataset_weights
    if weights is not None and (len(weights) != len(data_args.dataset_config) or min(weights) <= 0):
        raise InputError(
            data_args.dataset_dir,
            None,
            f"--dataset_weights needs one positive weight per --dataset_config ({len(data_args.dataset_config)})",
        )
    model_path = model_args.model_name_or_path
    tokenizer_path = model_args.tokenizer_name_or_path or model_path
    check_model_source(model_path)
    check_model_source(tokenizer_path)
    try:
        config = AutoConfig.from_pretrained(model_path, trust_remote_code=True)
    except (OSError, ValueError) as err:
        raise InputError(model_path, None, f"cannot load a model config: {first_line(err)}") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, trust_remote_code=True)
    except (OSError, ValueError) as err:
        raise InputError(tokenizer_path, None, f"cannot load a tokenizer: {first_line(err)}") from None
    if config.vocab_size != len(tokenizer):
        raise InputError(
            tokenizer_path,
            None,
            f"tokenizer has {len(tokenizer)} tokens but the model's vocab_size is {config.vocab_size} "
            "(resize with `python -m tokenization resize_model MODEL_DIR TOKENIZER_DIR`)",
        )
    return config, tokenizer


@dataclass
class PreparedData:
    """Tokenized windows: what the Trainer trains and evaluates on."""

    train: datasets.Dataset
    eval: datasets.Dataset | None
    window_bp: int  # the length nine in ten training windows are within
    windows: datasets.Dataset  # the training windows as baked (DNA and target text)


def train(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: GffMoeTrainingArguments,
    callbacks: list | None = None,
) -> dict:
    """The whole run; returns the final evaluation metrics (empty without a validation split)."""
    config, tokenizer = check_arguments(model_args, data_args)
    transformers.set_seed(training_args.seed)
    data = get_data(data_args, training_args, tokenizer, config.coordinate_scheme)
    model = get_model(model_args, data_args, training_args)
    # Annotation's defaults, saved with the model: the window it trained on, and its taxon.
    model.config.training_window_bp = data.window_bp
    model.config.training_taxa = list(data_args.dataset_config)
    trainer = get_trainer(model, tokenizer, data, training_args, config.coordinate_scheme, callbacks)
    maybe_train(trainer, training_args)
    maybe_fit_starts(model, data, training_args)
    metrics = maybe_evaluate(trainer)
    save_outputs(trainer, model_args, data_args, training_args, metrics)
    return metrics


def get_data(
    data_args: DataArguments, training_args: GffMoeTrainingArguments, tokenizer, scheme_name: str
) -> PreparedData:
    """The baked windows of the chosen configs, subsampled as asked and tokenized (cached by datasets)."""
    from training.data import load_windows, prepare_windows

    train_windows, eval_windows = load_windows(
        data_args.dataset_dir, data_args.dataset_config, data_args.dataset_weights, seed=training_args.seed
    )
    if data_args.max_train_samples is not None:
        train_windows = train_windows.select(range(min(data_args.max_train_samples, len(train_windows))))
    if eval_windows is not None and data_args.max_eval_samples is not None:
        eval_windows = eval_windows.select(range(min(data_args.max_eval_samples, len(eval_windows))))
        eval_windows = eval_windows if len(eval_windows) else None  # --max_eval_samples 0: no evaluation
    # Rank 0 tokenizes and fills the datasets cache; the other ranks then read it.
    with training_args.main_process_first(desc="tokenizing windows"):
        prepare = dict(
            tokenizer=tokenizer,
            scheme_name=scheme_name,
            max_source_tokens=data_args.max_source_tokens,
            max_target_tokens=data_args.max_target_tokens,
            num_proc=data_args.preprocessing_num_workers,
        )
        train_dataset = prepare_windows(train_windows, desc="tokenizing training windows", **prepare)
        eval_dataset = (
            prepare_windows(eval_windows, desc="tokenizing validation windows", **prepare)
            if eval_windows is not None
            else None
        )
    truncated = sum(train_dataset["target_truncated"])
    if truncated:
        logger.warning(
            f"{truncated} of {len(train_dataset)} training targets truncated to {data_args.max_target_tokens} tokens"
        )
    return PreparedData(train_dataset, eval_dataset, typical_window(train_windows), train_windows)


def typical_window(windows: datasets.Dataset) -> int:
    """The window length the model trains on, in bp: nine in ten training windows are at most this long (the
    bake's limit; the few longer ones hold a long gene whole). Read from Arrow batches, so a large dataset's
    sequences are never all in memory."""
    import pyarrow as pa
    import pyarrow.compute as pc

    batches = windows.select_columns(["sequence"]).with_format("arrow").iter(batch_size=10_000)
    lengths = pa.chunked_array([pc.utf8_length(b["sequence"]).cast(pa.int64()) for b in batches], pa.int64())
    return pc.quantile(lengths, 0.9, interpolation="higher")[0].as_py() if len(lengths) else 0


def get_model(model_args: ModelArguments, data_args: DataArguments, training_args: GffMoeTrainingArguments):
    """The checkpoint to train (with LoRA adapters when asked); sets the generation length it evaluates with."""
    model = AutoModelForSeq2SeqLM.from_pretrained(model_args.model_name_or_path, trust_remote_code=True)
    if model_args.lora_r:
        model = _with_lora(model, model_args)
    if training_args.generation_max_length is None and data_args.max_target_tokens:
        training_args.generation_max_length = data_args.max_target_tokens + 1
    return model


def evaluates_only(training_args: GffMoeTrainingArguments) -> bool:
    """train.py trains; `--do_eval` alone (no --do_train, no eval schedule) only evaluates the checkpoint."""
    return training_args.do_eval and not training_args.do_train and training_args.eval_strategy == "no"


def get_trainer(model, tokenizer, data: PreparedData, training_args, scheme_name: str, callbacks=None):
    """GffMoeTrainer with the annotation metrics, the progress lines and the time budget (if any)."""
    from transformers import PrinterCallback, ProgressCallback

    from training.callbacks import TimeBudgetCallback, TrainingProgressCallback
    from training.data import GffMoeCollator
    from training.metrics import annotation_metrics
    from training.trainer import GffMoeTrainer

    trainer = GffMoeTrainer(
        model=model,
        args=training_args,
        train_dataset=None if evaluates_only(training_args) else data.train,
        eval_dataset=data.eval,
        processing_class=tokenizer,
        data_collator=GffMoeCollator(pad_token_id=tokenizer.pad_token_id),
        compute_metrics=annotation_metrics(data.eval, tokenizer, scheme_name)
        if data.eval is not None
        else None,
        callbacks=list(callbacks or []),
    )
    trainer.remove_callback(PrinterCallback if training_args.disable_tqdm else ProgressCallback)
    trainer.add_callback(TrainingProgressCallback(training_args.max_train_seconds))
    if training_args.max_train_seconds and not any(
        isinstance(c, TimeBudgetCallback) for c in trainer.callback_handler.callbacks
    ):
        trainer.add_callback(TimeBudgetCallback(training_args.max_train_seconds))
    return trainer


def maybe_train(trainer, training_args: GffMoeTrainingArguments) -> None:
    """Train (resuming when asked) and record the training metrics, unless the run only evaluates."""
    if evaluates_only(training_args):
        return
    result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    train_metrics = {**result.metrics, **trainer.replica_check()}
    trainer.log_metrics("train", train_metrics)
    trainer.save_metrics("train", train_metrics)


def maybe_fit_starts(model, data: PreparedData, training_args: GffMoeTrainingArguments) -> None:
    """Fit the start scorer (`training.starts`) on the prokaryote training genes, into the model's config:
    which start codon of its ORF a bacterial gene takes when annotating."""
    from training.starts import fit_start_weights, start_examples

    if evaluates_only(training_args):
        return
    progress = not training_args.disable_tqdm and training_args.process_index == 0
    examples = start_examples(data.windows, seed=training_args.seed, progress=progress)
    if not examples:
        logger.info("no whole prokaryote genes in the training windows: no start scorer")
        return
    model.config.start_weights = fit_start_weights(examples)
    logger.info(f"start scorer fitted on {len(examples):,} training genes")


def maybe_evaluate(trainer) -> dict:
    """Annotation metrics on the validation windows (empty without them)."""
    if trainer.eval_dataset is None:
        return {}
    metrics = trainer.evaluate()
    trainer.log_metrics("eval", metrics)
    trainer.save_metrics("eval", metrics)
    return metrics


def save_outputs(trainer, model_args, data_args, training_args, metrics: dict) -> None:
    """The Hub-ready output directory: weights, tokenizer, state, the pipeline's code and the model card."""
    from training.model_card import write_model_card

    if model_args.lora_r:  # a Hub-ready directory holds the plain model: fold the adapters in
        trainer.model = trainer.model.merge_and_unload()
    trainer.save_model(training_args.output_dir)
    trainer.save_state()
    if trainer.is_world_process_zero():
        save_hub_code(training_args.output_dir)  # the gff-annotation pipeline travels with the model
        write_model_card(
            training_args.output_dir,
            base_model=model_args.model_name_or_path,
            datasets=data_args.dataset_config,
            dataset_dir=data_args.dataset_dir,
            metrics=metrics,
            config=trainer.model.config,  # as saved: with the window it trained on
            training_args=training_args,
        )
    if training_args.push_to_hub:
        trainer.push_to_hub()


def _with_lora(model, model_args: ModelArguments):
    from peft import LoraConfig, get_peft_model

    targets = model_args.lora_target_modules
    lora = LoraConfig(
        r=model_args.lora_r,
        lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout,
        target_modules=targets if targets == "all-linear" else [t.strip() for t in targets.split(",")],
    )
    model = get_peft_model(model, lora)
    model.print_trainable_parameters()
    return model


def run_training(argv: list[str] | None = None) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    use_cpu_processes_without_gpus()
    model_args, data_args, training_args = parse_args(argv)
    datasets.utils.logging.set_verbosity(training_args.get_process_log_level())
    transformers.utils.logging.set_verbosity(training_args.get_process_log_level())
    train(model_args, data_args, training_args)
    # The script owns the process group (train() may be called in a process that goes on). With the trainer
    # gone nothing else holds it, so this also joins gloo's threads, which left to the interpreter's exit can
    # abort a finished process (genome_io.cli.exit_launched).
    PartialState().destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    return run_cli(PROG, run_training, argv)


if __name__ == "__main__":
    sys.exit(main())
