"""Create a GFF-MoE checkpoint: from DNABERT-2 weights (the original recipe) or small and random.

    python init_model.py --save_dir DIR --dnabert_path zhihan1996/DNABERT-2-117M --use_moe \
        --num_experts 32 --moe_top_k 2 --tie_weights --tokenizer TOKENIZER_DIR

| component                             | action                                                  |
|---------------------------------------|---------------------------------------------------------|
| encoder embeddings, layers, norms     | copy                                                    |
| decoder self-attention and norms      | copy from an encoder layer                              |
| cross-attention, router               | random                                                  |
| decoder feed-forward (MoE)            | every expert upcycled from the GEGLU + noise, or random |
| output head                           | DNABERT-2's MLM head, tied to the input embeddings      |
| base-pair offset features, pointer    | random (new in GFF-MoE)                                 |
| per-base track head (optional)        | random (new in GFF-MoE)                                 |

The directory it writes loads with `AutoModelForSeq2SeqLM.from_pretrained(DIR, trust_remote_code=True)`.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import GenerationConfig

from configuration_gffmoe import GffMoeConfig
from core.errors import first_line
from genome_io.cli import non_negative_float, non_negative_int, positive_int, run_cli
from hub_code import save_hub_code
from modeling_gffmoe import GffMoeForConditionalGeneration
from tokenization.tokenizer import TokenizerError, load_dnabert_tokenizer, set_special_tokens

DNABERT_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
DEFAULT_NUM_EXPERTS, DEFAULT_MOE_TOP_K = 8, 2
# DNABERT-2 config.json field -> GffMoeConfig field (same names: the encoder is DNABERT-2).
DNABERT_CONFIG_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "type_vocab_size",
    "layer_norm_eps",
    "alibi_starting_size",
)


PROG = "init_model.py"


class InitModelError(ValueError):
    """A DNABERT-2 checkpoint or option that init_model cannot use."""


@dataclass
class DnabertCheckpoint:
    path: Path
    config: dict
    state_dict: dict[str, torch.Tensor]  # keys without the `bert.` prefix; the MLM head keeps `cls.`


def checkpoint_file(path_or_id: str, name: str) -> Path | None:
    """`name` in a local directory, or in a hub repository (downloaded, or from the cache offline)."""
    if Path(path_or_id).is_dir():
        path = Path(path_or_id) / name
        return path if path.is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError  # also "not in the cache" when offline

    try:
        return Path(hf_hub_download(path_or_id, name))
    except EntryNotFoundError:
        return None


def load_dnabert(path_or_id: str) -> DnabertCheckpoint:
    """A DNABERT-2 checkpoint from a local directory or a hub id (model.safetensors or pytorch_model.bin).

    Its files are read directly: config.json's `auto_map` (DNABERT-2's own remote code) is never run.
    """
    config_file = checkpoint_file(path_or_id, "config.json")
    if config_file is None:
        raise InitModelError(
            f"{path_or_id}: no config.json (not a DNABERT-2 directory, nor a hub repository reachable or cached)"
        )
    path = config_file.parent
    config = json.loads(config_file.read_text())
    weights = next(
        (file for name in DNABERT_WEIGHT_FILES if (file := checkpoint_file(path_or_id, name))), None
    )
    if weights is None:
        raise InitModelError(f"{path_or_id}: neither {' nor '.join(DNABERT_WEIGHT_FILES)} found")
    state_dict = {key.removeprefix("bert."): tensor for key, tensor in read_weights(weights).items()}
    return DnabertCheckpoint(path, config, state_dict)


def read_weights(weights: Path) -> dict[str, torch.Tensor]:
    """A state dict from safetensors or a weights-only pickle; InitModelError naming the file when it is
    truncated, damaged or pickles code (torch's weights-only unpickler refuses it)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        if weights.suffix == ".safetensors":
            return load_file(weights)
        return torch.load(weights, map_location="cpu", weights_only=True)
    except (SafetensorError, pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise InitModelError(f"{weights}: cannot read the weights ({first_line(error)})") from None


@dataclass
class WeightMapping:
    """Targets filled from checkpoint tensors, and which checkpoint keys were consumed."""

    copies: dict[str, torch.Tensor] = field(default_factory=dict)  # target name -> tensor
    sources: dict[str, str] = field(default_factory=dict)  # target name -> checkpoint key (for the summary)
    used: set[str] = field(default_factory=set)

    def take(self, target: str, source: str, state_dict: dict, rows: slice | None = None):
        if source not in state_dict:
            raise InitModelError(f"DNABERT-2 checkpoint lacks {source!r} (needed for {target})")
        tensor = state_dict[source]
        self.copies[target] = tensor[rows] if rows is not None else tensor
        self.sources[target] = source + (f"[{rows.start}:{rows.stop}]" if rows is not None else "")
        self.used.add(source)


def map_attention(mapping: WeightMapping, target: str, layer: str, state_dict: dict, hidden: int):
    """DNABERT-2's fused Wqkv (q, k, v stacked in that order) -> q_proj, k_proj, v_proj; output dense -> o_proj."""
    for i, name in enumerate(("q_proj", "k_proj", "v_proj")):
        rows = slice(i * hidden, (i + 1) * hidden)
        for kind in ("weight", "bias"):
            mapping.take(f"{target}.{name}.{kind}", f"{layer}.attention.self.Wqkv.{kind}", state_dict, rows)
    for kind in ("weight", "bias"):
        mapping.take(f"{target}.o_proj.{kind}", f"{layer}.attention.output.dense.{kind}", state_dict)


def map_layer_norm(mapping: WeightMapping, target: str, source: str, state_dict: dict):
    for kind in ("weight", "bias"):
        mapping.take(f"{target}.{kind}", f"{source}.{kind}", state_dict)


def source_layer(decoder_layer: int, decoder_layers: int, encoder_layers: int) -> int:
    """Encoder layer a decoder layer copies: spread evenly over the encoder depth."""
    return decoder_layer * encoder_layers // decoder_layers


def dnabert_weight_mapping(checkpoint: DnabertCheckpoint, config: GffMoeConfig) -> WeightMapping:
    """Every copy the table prescribes; experts are handled by `upcycle_experts`."""
    sd, hidden, mapping = checkpoint.state_dict, config.hidden_size, WeightMapping()
    mapping.take("shared.weight", "embeddings.word_embeddings.weight", sd)
    mapping.take("encoder.token_type_embeddings.weight", "embeddings.token_type_embeddings.weight", sd)
    map_layer_norm(mapping, "encoder.embedding_norm", "embeddings.LayerNorm", sd)
    map_layer_norm(mapping, "decoder.embedding_norm", "embeddings.LayerNorm", sd)
    for i in range(config.num_hidden_layers):
        source, target = f"encoder.layer.{i}", f"encoder.layers.{i}"
        map_attention(mapping, f"{target}.self_attn", source, sd, hidden)
        map_layer_norm(mapping, f"{target}.self_attn_norm", f"{source}.attention.output.LayerNorm", sd)
        mapping.take(f"{target}.mlp.gate_up_proj.weight", f"{source}.mlp.gated_layers.weight", sd)
        mapping.take(f"{target}.mlp.down_proj.weight", f"{source}.mlp.wo.weight", sd)
        mapping.take(f"{target}.mlp.down_proj.bias", f"{source}.mlp.wo.bias", sd)
        map_layer_norm(mapping, f"{target}.mlp_norm", f"{source}.mlp.layernorm", sd)
    for i in range(config.decoder_layers):
        source = f"encoder.layer.{source_layer(i, config.decoder_layers, config.num_hidden_layers)}"
        target = f"decoder.layers.{i}"
        map_attention(mapping, f"{target}.self_attn", source, sd, hidden)
        map_layer_norm(mapping, f"{target}.self_attn_norm", f"{source}.attention.output.LayerNorm", sd)
        map_layer_norm(mapping, f"{target}.cross_attn_norm", f"{source}.attention.output.LayerNorm", sd)
        map_layer_norm(mapping, f"{target}.moe_norm", f"{source}.mlp.layernorm", sd)
    if any(key.startswith("cls.") for key in sd):
        map_mlm_head(mapping, sd, config)
    return mapping


def map_mlm_head(mapping: WeightMapping, sd: dict, config: GffMoeConfig):
    """DNABERT-2's MLM head (BertForMaskedLM's `cls.predictions.*`) -> the output head. A BertModel
    checkpoint has none: the head then starts random."""
    for kind in ("weight", "bias"):
        mapping.take(f"lm_head_transform.dense.{kind}", f"cls.predictions.transform.dense.{kind}", sd)
    map_layer_norm(mapping, "lm_head_transform.norm", "cls.predictions.transform.LayerNorm", sd)
    bias_key = (
        "cls.predictions.decoder.bias" if "cls.predictions.decoder.bias" in sd else "cls.predictions.bias"
    )
    mapping.take("lm_head.bias", bias_key, sd)
    # The MLM decoder weight is the word embedding matrix (tied in DNABERT-2).
    decoder_key = "cls.predictions.decoder.weight"
    if not config.tie_word_embeddings:
        mapping.take(
            "lm_head.weight", decoder_key if decoder_key in sd else "embeddings.word_embeddings.weight", sd
        )
    elif decoder_key in sd:
        if not torch.equal(sd[decoder_key], sd["embeddings.word_embeddings.weight"]):
            raise InitModelError(
                f"{decoder_key} differs from the word embeddings; use it untied (no --tie_weights)"
            )
        mapping.used.add(decoder_key)
    mapping.used.update(key for key in ("cls.predictions.bias", "cls.predictions.decoder.bias") if key in sd)


def upcycle_experts(
    model: GffMoeForConditionalGeneration, checkpoint: DnabertCheckpoint, noise: float, seed: int
):
    """Every expert of decoder layer i starts as the GEGLU of its source encoder layer plus Gaussian noise of
    `noise` x the weight's std, so experts are near-copies of a trained feed-forward but can diverge."""
    config, sd = model.config, checkpoint.state_dict
    generator = torch.Generator().manual_seed(seed)

    def noisy(weight: torch.Tensor) -> torch.Tensor:
        copies = weight.expand(config.num_experts, *weight.shape)
        return copies + torch.randn(copies.shape, generator=generator) * noise * weight.std()

    if config.expert_intermediate_size != config.intermediate_size:
        raise InitModelError(
            "upcycling needs expert_intermediate_size == intermediate_size; use --expert_init random"
        )
    for i, layer in enumerate(model.decoder.layers):
        source = f"encoder.layer.{source_layer(i, config.decoder_layers, config.num_hidden_layers)}"
        experts = layer.moe.experts
        with torch.no_grad():
            experts.gate_up_proj.copy_(noisy(sd[f"{source}.mlp.gated_layers.weight"]))
            experts.down_proj.copy_(noisy(sd[f"{source}.mlp.wo.weight"]))
            experts.down_proj_bias.copy_(sd[f"{source}.mlp.wo.bias"].expand_as(experts.down_proj_bias))
            experts.gate_up_proj_bias.zero_()  # DNABERT-2's gated layer has no bias


def resize_to_tokenizer(model: GffMoeForConditionalGeneration, new_size: int) -> int:
    """Grow the shared embeddings (and tied output head) to the extended tokenizer; new rows (and output
    biases) start at the mean of the old ones. Returns how many rows were added."""
    old_size = model.config.vocab_size
    if new_size == old_size:
        return 0
    if new_size < old_size:
        raise InitModelError(f"tokenizer has {new_size} tokens, fewer than the checkpoint's {old_size}")
    model.resize_token_embeddings(new_size, mean_resizing=False)
    with torch.no_grad():
        embeddings = model.get_input_embeddings().weight
        embeddings[old_size:] = embeddings[:old_size].mean(dim=0)
        model.lm_head.bias[old_size:] = model.lm_head.bias[:old_size].mean()
    return new_size - old_size


def component_of(name: str) -> str:
    for key, component in (
        ("shared.", "embeddings"),
        ("encoder.", "encoder"),
        ("decoder.embedding_norm", "decoder norms"),
        ("self_attn_norm", "decoder norms"),
        ("cross_attn_norm", "decoder norms"),
        ("moe_norm", "decoder norms"),
        ("self_attn.", "decoder self-attention"),
        ("cross_attn.", "cross-attention"),
        ("moe.router", "router"),
        ("moe.experts", "experts"),
        ("lm_head", "output head"),
        ("offset_embedding", "bp offset features"),
        ("pointer_", "pointer head"),
        ("track_head", "track head"),
    ):
        if key in name:
            return component
    return "other"


def component_table(model, copied: set[str], expert_action: str) -> str:
    """Parameter counts per component and what initialised them, plus total and active parameters."""
    rows: dict[str, list] = {}
    for name, param in model.named_parameters():  # tied parameters are listed once
        component = component_of(name)
        action = "copied" if name in copied else ("upcycled" if component == "experts" else "random")
        if component == "experts" and expert_action == "random":
            action = "random"
        row = rows.setdefault(component, [set(), 0])
        row[0].add(action)
        row[1] += param.numel()
    config = model.config
    total = sum(p.numel() for p in model.parameters())
    experts = rows.get("experts", [None, 0])[1]
    active = total - experts + experts * config.moe_top_k // config.num_experts
    lines = [f"{'component':<24} {'init':<16} {'parameters':>12}", "-" * 54]
    lines += [f"{c:<24} {'/'.join(sorted(a)):<16} {n:>12,}" for c, (a, n) in rows.items()]
    lines += ["-" * 54, f"{'total':<41} {total:>12,}", f"{'active per token':<41} {active:>12,}"]
    return "\n".join(lines)


def build_config(args, checkpoint: DnabertCheckpoint | None, vocab_size: int | None) -> GffMoeConfig:
    if not args.use_moe and (args.num_experts is not None or args.moe_top_k is not None):
        raise InitModelError(
            "--num_experts and --moe_top_k need --use_moe (without it the decoder is dense: one expert)"
        )
    if args.track_conv_channels and not args.track_loss_weight:
        raise InitModelError(
            "--track_conv_channels needs --track_loss_weight > 0 (without it there is no track head)"
        )
    if checkpoint is not None:
        fields = {key: checkpoint.config[key] for key in DNABERT_CONFIG_FIELDS if key in checkpoint.config}
    else:
        fields = {
            "hidden_size": args.hidden_size,
            "num_hidden_layers": args.num_hidden_layers,
            "num_attention_heads": args.num_attention_heads,
            "intermediate_size": args.intermediate_size,
            "vocab_size": vocab_size or args.vocab_size,
        }
    if args.hidden_dropout_prob is not None:
        fields["hidden_dropout_prob"] = args.hidden_dropout_prob
    try:
        return GffMoeConfig(
            **fields,
            decoder_layers=args.decoder_layers,
            num_experts=(args.num_experts or DEFAULT_NUM_EXPERTS) if args.use_moe else 1,
            moe_top_k=(args.moe_top_k or DEFAULT_MOE_TOP_K) if args.use_moe else 1,
            coordinate_scheme=args.coordinate_scheme,
            tie_word_embeddings=args.tie_weights,
            track_loss_weight=args.track_loss_weight,
            track_conv_channels=args.track_conv_channels,
        )
    except ValueError as error:  # sizes that do not fit together, e.g. hidden_size % heads
        raise InitModelError(f"{checkpoint.path if checkpoint else 'model size'}: {error}") from None


def load_tokenizer(path_or_id: str | None):
    if path_or_id is None:
        return None
    try:
        return load_dnabert_tokenizer(path_or_id)
    except TokenizerError as error:
        raise InitModelError(str(error)) from None


def init_model(args) -> GffMoeForConditionalGeneration:
    torch.manual_seed(args.seed)
    checkpoint = load_dnabert(args.dnabert_path) if args.dnabert_path else None
    # A random model's vocabulary is the tokenizer's; a checkpoint's is its own, grown to the tokenizer below.
    tokenizer = load_tokenizer(args.tokenizer) if checkpoint is None else None
    config = build_config(args, checkpoint, len(tokenizer) if tokenizer is not None else None)
    model = GffMoeForConditionalGeneration(config)
    model.generation_config = GenerationConfig(max_length=args.max_length)

    copied: set[str] = set()
    if checkpoint is not None:
        mapping = dnabert_weight_mapping(checkpoint, config)
        if args.expert_init == "upcycle":
            upcycle_experts(model, checkpoint, args.expert_noise, args.seed)
        unused = sorted(set(checkpoint.state_dict) - mapping.used)
        if unused:
            raise InitModelError(
                f"{checkpoint.path}: checkpoint tensors with no place in GFF-MoE: {', '.join(unused)}"
            )
        params = dict(model.named_parameters())
        with torch.no_grad():
            for target, tensor in mapping.copies.items():
                if params[target].shape != tensor.shape:
                    raise InitModelError(
                        f"{target}: shape {tuple(params[target].shape)} != checkpoint {tuple(tensor.shape)}"
                    )
                params[target].copy_(tensor)
        copied = set(mapping.copies)
        print(
            f"mapped {len(mapping.copies)} tensors from {len(mapping.used)} of {len(checkpoint.state_dict)} checkpoint keys"
        )
        for target in (
            "shared.weight",
            "encoder.layers.0.self_attn.q_proj.weight",
            "decoder.layers.0.self_attn.q_proj.weight",
        ):
            print(f"  {target:<48} <- {mapping.sources[target]}")

    if checkpoint is not None:  # without --tokenizer the model keeps DNABERT-2's own
        tokenizer = load_tokenizer(args.tokenizer or args.dnabert_path)
    if tokenizer is not None:
        added = resize_to_tokenizer(model, len(tokenizer))
        print(f"vocabulary: {len(tokenizer)} tokens ({added} added rows, initialised to the mean)")
        set_special_tokens(model, tokenizer)
        model.set_dna_vocabulary(
            tokenizer.convert_ids_to_tokens(list(range(len(tokenizer)))), tokenizer.unk_token
        )
    print(component_table(model, copied, args.expert_init if checkpoint is not None else "random"))

    save_dir = Path(args.save_dir)
    model.save_pretrained(save_dir)
    if tokenizer is not None:
        tokenizer.save_pretrained(save_dir)
    save_hub_code(save_dir)  # the gff-annotation pipeline travels with the model
    print(f"saved to {save_dir}")
    return model


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--save_dir", required=True, help="where to write the checkpoint")
    parser.add_argument(
        "--dnabert_path", help="DNABERT-2 directory or hub id (omit for a small random model)"
    )
    parser.add_argument("--tokenizer", help="tokenizer directory (default: DNABERT-2's, from --dnabert_path)")
    parser.add_argument(
        "--use_moe", action="store_true", help="Mixture-of-Experts decoder (else one dense expert)"
    )
    parser.add_argument(
        "--num_experts",
        type=positive_int,
        help=f"experts per decoder layer, with --use_moe (default {DEFAULT_NUM_EXPERTS})",
    )
    parser.add_argument(
        "--moe_top_k",
        type=positive_int,
        help=f"experts each token is routed to, with --use_moe (default {DEFAULT_MOE_TOP_K})",
    )
    parser.add_argument(
        "--tie_weights", action="store_true", help="tie the output head to the input embeddings"
    )
    parser.add_argument("--decoder_layers", type=positive_int, default=4)
    parser.add_argument("--expert_init", choices=("upcycle", "random"), default="upcycle")
    parser.add_argument(
        "--expert_noise", type=float, default=0.01, help="upcycling noise, relative to weight std"
    )
    parser.add_argument("--coordinate_scheme", choices=("pointer", "number"), default="pointer")
    parser.add_argument(
        "--hidden_dropout_prob",
        type=float,
        help="dropout after embeddings, attention and feed-forwards (default: DNABERT-2's, 0.1); "
        "0 for short trainings, which underfit",
    )
    parser.add_argument(
        "--track_loss_weight",
        type=non_negative_float,
        default=0.0,
        help="weight of the per-base gene-structure track loss (an encoder head classifies every base on "
        "both strands: intergenic, CDS codon position, intron, UTR and the start/stop/splice boundaries); "
        "0: no track head",
    )
    parser.add_argument(
        "--track_conv_channels",
        type=non_negative_int,
        default=0,
        help="with a track head: width of its convolutions over the bases (+-160 bp; 32 took a 25-minute "
        "S. pombe model's per-base coding F1 on held-out sequence from ~0.70 to ~0.82, README); 0: none",
    )
    parser.add_argument("--max_length", type=positive_int, default=1024, help="default generation length")
    parser.add_argument("--seed", type=int, default=0)
    small = parser.add_argument_group("random model size (without --dnabert_path)")
    small.add_argument("--hidden_size", type=positive_int, default=128)
    small.add_argument("--num_hidden_layers", type=positive_int, default=3)
    small.add_argument("--num_attention_heads", type=positive_int, default=4)
    small.add_argument("--intermediate_size", type=positive_int, default=256)
    small.add_argument("--vocab_size", type=positive_int, default=4096, help="used only without a tokenizer")
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv=None) -> int:
    return run_cli(PROG, lambda argv: init_model(parse_args(argv)), argv, errors=(InitModelError, OSError))


if __name__ == "__main__":
    sys.exit(main())
