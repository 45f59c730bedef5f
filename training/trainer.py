"""Seq2SeqTrainer with GFF-MoE's training signals in the Trainer's own logs.

Each logged training step also carries, averaged since the previous log and over all processes:
the padding fraction of source and target, the router statistics the model returns (aux loss, z-loss,
router entropy, and per decoder layer the min / max / entropy of the expert load: see `router_logs`) and,
with a track head, the per-base track loss (`track/loss`); and `tokens_per_second`, source and target
tokens (not padding) of all processes per second since the previous log. They are summed as tensors and moved to the host
once per logging step, not at every step. Evaluation adds the track head's per-class precision and recall
(`eval_track_CLASS_precision` / `_recall`, both strands pooled). Everything goes through
`Trainer.log`, so every `report_to` integration (tensorboard, wandb, ...) sees it.
"""

from __future__ import annotations

import time
from collections import Counter

import torch
from torch.utils.data import SequentialSampler
from transformers import Seq2SeqTrainer

from tokenization.track import BOUNDARY, REGION

from .data import padding_fraction


def router_logs(outputs) -> dict[str, torch.Tensor]:
    """The router statistics of one GffMoe forward as detached tensors (empty for outputs without them).

    Scalars: `router/aux_loss`, `router/z_loss` and `router/router_entropy` (the routers' mean entropy over
    layers). Per decoder layer, three statistics of the share of routed slots each expert received:
    `router/expert_load_min`, `_max` and `_entropy` (nats; ln(num_experts) is an even load), vectors that log as
    `NAME_layerL`. Nothing is moved to the host: `GffMoeTrainer` syncs once per logging step.
    """
    if getattr(outputs, "expert_load", None) is None:
        return {}
    load = outputs.expert_load.detach().float()  # [layers, experts]
    return {
        "router/aux_loss": outputs.aux_loss.detach().float(),
        "router/z_loss": outputs.z_loss.detach().float(),
        "router/router_entropy": outputs.router_entropy.detach().float().mean(),
        "router/expert_load_min": load.amin(-1),
        "router/expert_load_max": load.amax(-1),
        "router/expert_load_entropy": -(load * load.clamp_min(1e-9).log()).sum(-1),
    }


def flat_logs(stats: dict[str, torch.Tensor]) -> dict[str, float]:
    """Log entries of statistics: a scalar keeps its name, entry L of a vector is logged as `NAME_layerL`."""
    logs = {}
    for name, value in stats.items():
        if value.dim() == 0:
            logs[name] = round(value.item(), 6)
        else:
            logs.update({f"{name}_layer{i}": round(v, 6) for i, v in enumerate(value.tolist())})
    return logs


class GffMoeTrainer(Seq2SeqTrainer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The model's loss is a per-batch mean that ignores `num_items_in_batch`: the Trainer must scale it
        # for gradient accumulation itself and not multiply it by the number of processes.
        self.model_accepts_loss_kwargs = False
        # Sums of detached statistics since the last log, and how many steps each sums: a `.item()` per step
        # would wait for the accelerator at every step.
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: Counter = Counter()
        self._tokens, self._since = 0, time.perf_counter()  # source + target tokens (not padding) since then
        self._track_confusion: dict[str, torch.Tensor] = {}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = super().compute_loss(
            model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
        )
        if model.training:
            if not self._sums:
                self._since = time.perf_counter()
            self._tokens = self._tokens + inputs["attention_mask"].sum() + inputs["labels"].ne(-100).sum()
            stats = {**padding_fraction(inputs), **router_logs(outputs)}
            if outputs.track_loss is not None:
                stats["track/loss"] = outputs.track_loss.detach().float()
            for name, value in stats.items():
                self._sums[name] = self._sums[name] + value if name in self._sums else value
                self._counts[name] += 1
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
        """Add one batch to the confusion matrices of the track's region and boundary classes. Counted per
        window and gathered as the predictions are (`gather_for_metrics`), so that across processes each
        window counts once: even batches repeat windows on the last round."""
        encoded = model.encoder(
            inputs["input_ids"],
            inputs["attention_mask"],
            token_offsets=inputs["token_offsets"],
            return_dict=True,
        )
        logits, row, position = model.track(
            encoded.last_hidden_state, inputs["input_ids"], inputs["token_offsets"]
        )
        inside = position < track_labels.shape[1]
        row, labels = row[inside], track_labels[row[inside], position[inside]]
        groups = logits[inside].split([len(REGION), len(BOUNDARY)] * 2, dim=-1)
        windows, per_window = len(track_labels), {}
        for column, (kind, classes) in enumerate([("region", REGION), ("boundary", BOUNDARY)] * 2):
            truth, predicted, k = labels[:, column], groups[column].argmax(-1), len(classes)
            keep = truth >= 0
            cells = (row[keep] * k + truth[keep]) * k + predicted[keep]
            counts = torch.bincount(cells, minlength=windows * k * k).view(windows, k, k)
            per_window[kind] = per_window.get(kind, 0) + counts
        for kind, counts in per_window.items():
            gathered = self.accelerator.gather_for_metrics(counts).sum(0)
            self._track_confusion[kind] = self._track_confusion.get(kind, 0) + gathered

    def evaluation_loop(self, *args, metric_key_prefix: str = "eval", **kwargs):
        self._track_confusion = {}
        # Seq2SeqTrainer.evaluate gathers with `accelerator.gather`, which keeps the windows that even batches
        # repeat on the last round across processes (compute_metrics then sees more predictions than windows);
        # with one sequence per window `gather_for_metrics` drops them.
        self.gather_function = self.accelerator.gather_for_metrics
        output = super().evaluation_loop(*args, metric_key_prefix=metric_key_prefix, **kwargs)
        for kind, classes in (("region", REGION), ("boundary", BOUNDARY)):
            if kind not in self._track_confusion:
                continue
            confusion = self._track_confusion[kind].double()  # every process's windows, each once
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
        if "loss" in logs and self._sums:
            means = {name: self._sums[name] / self._counts[name] for name in sorted(self._sums)}
            flat = torch.cat([mean.reshape(-1) for mean in means.values()]).to(self.args.device)
            flat = self.accelerator.reduce(flat, reduction="mean").cpu()  # the one host sync
            parts = flat.split([mean.numel() for mean in means.values()])
            logs.update(
                flat_logs(
                    {
                        name: part.view(mean.shape)
                        for (name, mean), part in zip(means.items(), parts, strict=True)
                    }
                )
            )
            self._sums.clear()
            self._counts.clear()
            tokens = self.accelerator.reduce(torch.as_tensor(self._tokens, device=self.args.device), "sum")
            logs["tokens_per_second"] = round(tokens.item() / (time.perf_counter() - self._since), 1)
            self._tokens = 0
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
