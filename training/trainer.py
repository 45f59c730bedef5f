"""Seq2SeqTrainer with GFF-MoE's training signals in the Trainer's own logs.

Each logged training step also carries, averaged since the previous log and over all processes:
the padding fraction of source and target, the router statistics the model returns
(aux loss, z-loss, router entropy, expert load per decoder layer) and, with a track head, the per-base
track loss (`track/loss`). Evaluation adds the track head's per-class precision and recall
(`eval_track_CLASS_precision` / `_recall`, both strands pooled). Everything goes through
`Trainer.log`, so every `report_to` integration (tensorboard, wandb, ...) sees it.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch.utils.data import SequentialSampler
from transformers import Seq2SeqTrainer

from tokenization.track import BOUNDARY, REGION

from .data import padding_fraction

ROUTER_STATS = ("aux_loss", "z_loss", "router_entropy", "expert_load")


def router_logs(outputs) -> dict[str, float]:
    """Flat scalar logs of the router statistics a GffMoe forward returns (empty for a dense model).

    Scalars log as `router/NAME`, per-layer vectors as `router/NAME_layerL`, and the
    [layers, experts] expert load as `router/expert_load_layerL_expertE`.
    """
    logs = {}
    for name in ROUTER_STATS:
        value = getattr(outputs, name, None)
        if value is None:
            continue
        value = value.detach().float()
        if value.dim() == 0:
            logs[f"router/{name}"] = value.item()
        elif value.dim() == 1:
            logs.update({f"router/{name}_layer{i}": v for i, v in enumerate(value.tolist())})
        else:
            for layer, row in enumerate(value.tolist()):
                logs.update({f"router/{name}_layer{layer}_expert{e}": v for e, v in enumerate(row)})
    return logs


class GffMoeTrainer(Seq2SeqTrainer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The model's loss is a per-batch mean that ignores `num_items_in_batch`: the Trainer must scale it
        # for gradient accumulation itself and not multiply it by the number of processes.
        self.model_accepts_loss_kwargs = False
        self._tallies: dict[str, list[float]] = defaultdict(list)
        self._track_confusion: dict[str, torch.Tensor] = {}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = super().compute_loss(
            model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
        )
        if model.training:
            logs = {**padding_fraction(inputs), **router_logs(outputs)}
            if outputs.track_loss is not None:
                logs["track/loss"] = outputs.track_loss.item()
            for name, value in logs.items():
                self._tallies[name].append(value)
        return (loss, outputs) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None, **kwargs):
        # generate() has no use for the per-base labels; the track head is scored on its own.
        track_labels = inputs.pop("track_labels", None)
        result = super().prediction_step(
            model, inputs, prediction_loss_only, ignore_keys=ignore_keys, **kwargs
        )
        unwrapped = self.accelerator.unwrap_model(model)
        if track_labels is not None and hasattr(unwrapped, "track_head"):
            self._count_track(unwrapped, inputs, track_labels)
        return result

    @torch.no_grad()
    def _count_track(self, model, inputs, track_labels) -> None:
        """Add one batch to the confusion matrices of the track's region and boundary classes."""
        encoded = model.encoder(
            inputs["input_ids"], inputs["attention_mask"], token_offsets=inputs["token_offsets"]
        )
        logits, row, position = model.track(
            encoded.last_hidden_state, inputs["input_ids"], inputs["token_offsets"]
        )
        inside = position < track_labels.shape[1]
        labels = track_labels[row[inside], position[inside]]
        groups = logits[inside].split([len(REGION), len(BOUNDARY)] * 2, dim=-1)
        for column, (kind, classes) in enumerate([("region", REGION), ("boundary", BOUNDARY)] * 2):
            truth, predicted = labels[:, column], groups[column].argmax(-1)
            keep = truth >= 0
            pairs = truth[keep] * len(classes) + predicted[keep]
            counts = torch.bincount(pairs, minlength=len(classes) ** 2).view(len(classes), len(classes))
            self._track_confusion[kind] = self._track_confusion.get(kind, 0) + counts

    def evaluation_loop(self, *args, metric_key_prefix: str = "eval", **kwargs):
        self._track_confusion = {}
        output = super().evaluation_loop(*args, metric_key_prefix=metric_key_prefix, **kwargs)
        for kind, classes in (("region", REGION), ("boundary", BOUNDARY)):
            if kind not in self._track_confusion:
                continue
            confusion = self.accelerator.reduce(self._track_confusion[kind], reduction="sum").double()
            hits = confusion.diagonal()
            precision = hits / confusion.sum(0).clamp(min=1)
            recall = hits / confusion.sum(1).clamp(min=1)
            for i, name in enumerate(classes):
                if name in ("intergenic", "none"):
                    continue  # the background class: its scores say little
                output.metrics[f"{metric_key_prefix}_track_{name}_precision"] = round(precision[i].item(), 4)
                output.metrics[f"{metric_key_prefix}_track_{name}_recall"] = round(recall[i].item(), 4)
        return output

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # Training logs (they carry "loss") are written on every rank at the same step, so the mean over
        # processes is a collective every rank joins.
        if "loss" in logs and self._tallies:
            names = sorted(self._tallies)
            means = torch.tensor(
                [sum(v) / len(v) for v in map(self._tallies.get, names)], device=self.args.device
            )
            means = self.accelerator.reduce(means, reduction="mean")
            logs.update({name: round(value, 6) for name, value in zip(names, means.tolist(), strict=True)})
            self._tallies.clear()
        super().log(logs, start_time)

    def replica_check(self) -> dict[str, float]:
        """World size and whether every process holds the same weights (data parallelism's invariant).

        Each process sums its parameters in float64 with a position-dependent weight, so a swapped or
        drifted tensor changes the digest; the digests of all processes are gathered and compared.
        """
        model = self.accelerator.unwrap_model(self.model)
        digest = torch.zeros(2, dtype=torch.float64, device=self.args.device)
        with torch.no_grad():
            for i, param in enumerate(model.parameters()):
                values = param.detach().double().flatten()
                digest[0] += values.sum()
                digest[1] += (
                    values * torch.linspace(1, 2, values.numel(), dtype=torch.float64, device=values.device)
                ).sum() * (i + 1)
        digests = self.accelerator.gather(digest[None])
        return {
            "world_size": self.accelerator.num_processes,
            "replicas_identical": float(bool((digests == digests[0]).all())),
        }

    def create_model_card(self, *args, **kwargs) -> None:
        """Keep train.py's card (training/model_card.py); push_to_hub would overwrite it with a generic one."""

    def _get_eval_sampler(self, eval_dataset):
        # Keep validation windows in dataset order: compute_metrics decodes prediction i with window i's
        # coordinate scheme. (Across processes, accelerate's gather restores that order.)
        if self.args.world_size <= 1:
            return SequentialSampler(eval_dataset)
        return None
