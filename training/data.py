"""From baked windows to model batches.

`prepare_windows` turns the dataset's columns (window DNA + canonical target text) into model inputs with
`datasets.map` (cached, parallel): source ids with each token's base-pair span, and labels in the model's
coordinate scheme. `GffMoeCollator` pads them per batch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from core.errors import InputError
from tokenization.codec import text_to_genes
from tokenization.coordinates import NumberCoordinates, PointerCoordinates
from tokenization.tokenizer import encode_source, target_ids
from tokenization.track import TRACK_COLUMNS, gene_track

LENGTH_COLUMN = "length"


def dataset_configs(dataset_dir: str | Path) -> list[str]:
    """Taxon configs baked in `dataset_dir` (read from its dataset card; no data is loaded)."""
    if not Path(dataset_dir).is_dir():
        raise InputError(
            dataset_dir, None, "no such dataset directory (bake one: python -m dataset_builder bake --help)"
        )
    try:
        return datasets.get_dataset_config_names(str(dataset_dir))
    except (FileNotFoundError, ValueError) as err:
        raise InputError(dataset_dir, None, f"not a baked dataset: {err}") from None


def dataset_cache_dir(dataset_dir: str | Path) -> str:
    """A datasets cache directory owned by this exact dataset: its path and its shards' sizes and mtimes.

    datasets keys a local folder's cache by the folder's basename and card, not by the files' contents:
    two `.../data` folders with the same card, or a re-baked folder, would silently load stale windows.
    """
    root = Path(dataset_dir).resolve()
    shards = sorted(root.rglob("*.parquet"))
    identity = [str(root)] + [
        f"{p.relative_to(root)}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in shards
    ]
    digest = hashlib.sha1("\n".join(identity).encode()).hexdigest()[:16]
    return str(Path(datasets.config.HF_DATASETS_CACHE) / "gffmoe" / f"{root.name}-{digest}")


def load_windows(
    dataset_dir: str | Path, configs: list[str], weights: list[float] | None = None, seed: int = 0
) -> tuple[datasets.Dataset, datasets.Dataset | None]:
    """Training windows (several configs interleaved by `weights`) and validation windows (concatenated)."""
    cache_dir = dataset_cache_dir(dataset_dir)
    splits = [datasets.load_dataset(str(dataset_dir), name, cache_dir=cache_dir) for name in configs]
    for name, split in zip(configs, splits, strict=True):
        if "train" not in split or not len(split["train"]):
            raise InputError(
                dataset_dir,
                None,
                f"config {name!r} has no training windows (bake more genomes, or hold out fewer)",
            )
    train = [s["train"] for s in splits]
    if len(train) == 1:
        train_windows = train[0]
    else:
        # Default weights: in proportion to each config's size, i.e. every window seen about once per epoch.
        weights = weights or [len(t) for t in train]
        total = sum(weights)
        train_windows = datasets.interleave_datasets(
            train, probabilities=[w / total for w in weights], seed=seed, stopping_strategy="all_exhausted"
        )
    validation = [s["validation"] for s in splits if "validation" in s and len(s["validation"])]
    eval_windows = datasets.concatenate_datasets(validation) if validation else None
    return train_windows, eval_windows


def coordinate_scheme(name: str, token_offsets, vocab_size: int) -> NumberCoordinates | PointerCoordinates:
    """The scheme object of one window: pointers need the window's source token spans."""
    if name == "pointer":
        return PointerCoordinates(token_offsets, vocab_size)
    return NumberCoordinates()


def tokenize_window(
    example: dict,
    tokenizer,
    scheme_name: str,
    max_source_tokens: int | None = None,
    max_target_tokens: int | None = None,
) -> dict:
    """Model inputs of one window (the map function of `prepare_windows`)."""
    # Hints (a subset of the true genes, `--hint_ratio`) are input-side evidence the encoder reads.
    source = encode_source(tokenizer, example["sequence"], max_source_tokens, example.get("hints"))
    decoded = text_to_genes(example["target"])
    if decoded.errors:
        where = f"{example.get('species', '?')} {example.get('seqid', '?')}:{example.get('start', '?')}"
        raise ValueError(f"stored target of window {where} does not decode: {decoded.errors[0]}")
    # A truncated source sees only the first `covered` bases: genes beyond are cut there (open edge), not lost.
    covered = max(end for _, end in source["token_offsets"])
    genes = [clipped for gene in decoded.genes if (clipped := gene.clip(0, covered - 1)) is not None]
    scheme = coordinate_scheme(scheme_name, source["token_offsets"], len(tokenizer))
    labels = target_ids(genes, tokenizer, scheme)
    truncated = max_target_tokens is not None and len(labels) > max_target_tokens
    if truncated:
        labels = labels[:max_target_tokens]
    return {
        "input_ids": source["input_ids"],
        "attention_mask": source["attention_mask"],
        "token_offsets": source["token_offsets"],
        "labels": labels,
        # The per-base target of the same genes, int8 [covered, 4] as bytes (a quarter of a list's size).
        "track": gene_track(genes, covered).tobytes(),
        LENGTH_COLUMN: len(source["input_ids"]) + len(labels),
        "target_truncated": truncated,
    }


def prepare_windows(
    dataset,
    tokenizer,
    scheme_name: str,
    max_source_tokens: int | None = None,
    max_target_tokens: int | None = None,
    num_proc: int | None = None,
    desc: str = "tokenizing windows",
):
    """Tokenize a `datasets.Dataset` of windows; keeps only model columns, `length` and `target_truncated`."""
    return dataset.map(
        tokenize_window,
        fn_kwargs={
            "tokenizer": tokenizer,
            "scheme_name": scheme_name,
            "max_source_tokens": max_source_tokens,
            "max_target_tokens": max_target_tokens,
        },
        remove_columns=dataset.column_names,
        num_proc=num_proc,
        desc=desc,
    )


@dataclass
class GffMoeCollator:
    """Right-pads a list of tokenized windows into a batch.

    input_ids with the tokenizer's pad id, attention_mask with 0, token_offsets with the empty span (0, 0)
    that special tokens have, labels with -100 (ignored by the loss), and the per-base `track` (bytes, see
    `tokenize_window`) into `track_labels` [batch, bases, 4] with -100. Other columns are ignored.
    """

    pad_token_id: int
    label_pad_token_id: int = -100
    pad_to_multiple_of: int | None = None

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        batch = {
            "input_ids": self._pad([f["input_ids"] for f in features], self.pad_token_id),
            "attention_mask": self._pad([f["attention_mask"] for f in features], 0),
            "token_offsets": self._pad([f["token_offsets"] for f in features], 0),
        }
        if "labels" in features[0]:
            batch["labels"] = self._pad([f["labels"] for f in features], self.label_pad_token_id)
        if "track" in features[0]:
            width = len(TRACK_COLUMNS)
            tracks = [
                np.frombuffer(f["track"], dtype=np.int8).reshape(-1, width).astype(np.int64) for f in features
            ]
            batch["track_labels"] = self._pad(tracks, self.label_pad_token_id)
        return batch

    def _pad(self, rows: list, value: int) -> torch.Tensor:
        tensors = [torch.as_tensor(row, dtype=torch.long) for row in rows]
        padded = pad_sequence(tensors, batch_first=True, padding_value=value)
        if self.pad_to_multiple_of and padded.shape[1] % self.pad_to_multiple_of:
            extra = self.pad_to_multiple_of - padded.shape[1] % self.pad_to_multiple_of
            tail = torch.full((padded.shape[0], extra, *padded.shape[2:]), value, dtype=torch.long)
            padded = torch.cat([padded, tail], dim=1)
        return padded


def padding_fraction(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Share of padded positions in a collated batch (source and target), as tensors for logging."""
    fractions = {"padding_fraction_source": 1.0 - batch["attention_mask"].float().mean()}
    if "labels" in batch:
        fractions["padding_fraction_target"] = (batch["labels"] == -100).float().mean()
    return fractions
