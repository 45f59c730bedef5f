"""GFF-MoE: a DNABERT-2 encoder reads DNA, a Mixture-of-Experts decoder writes the gene annotation as tokens.

Encoder: DNABERT-2 exactly (post-LayerNorm BERT, symmetric ALiBi, GEGLU, token-type embeddings).
Encoder memory: the encoder output plus Fourier features of each token's base-pair start and end offsets,
because ALiBi carries no absolute position and BPE tokens vary in length.
Decoder: causal ALiBi self-attention, cross-attention to the memory, top-k softmax-routed GEGLU experts.
Output: logits over the vocabulary followed, in the pointer scheme, by one slot per source token. Id
`vocab_size + i` means "the coordinate lies in source token i"; fed back to the decoder, it is embedded as
the memory vector of token i, so the decoder sees what it pointed at.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.integrations.moe import use_experts_implementation
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithPastAndCrossAttentions,
    Seq2SeqLMOutput,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import can_return_tuple

try:  # a saved Hub directory loads this file as part of a package
    from .configuration_gffmoe import GffMoeConfig
except ImportError:  # the repository checkout imports it as a top-level module
    from configuration_gffmoe import GffMoeConfig


# `token_bases` codes: a base, no base (past the token's end, or not DNA), an N (a base, but no letter), and a
# token whose length in bases is unknown ([UNK] can stand for any number of them).
BASE_CODES = {"A": 0, "C": 1, "G": 2, "T": 3, "N": 5}
NO_BASE, UNKNOWN_LENGTH = 4, 6
BASE_KINDS = UNKNOWN_LENGTH + 1
# Classes of the per-base track's four columns (tokenization.track.TRACK_COLUMNS): region and boundary on the
# + strand, then on the - strand.
TRACK_GROUPS = (6, 7, 6, 7)


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """ALiBi head slopes with the standard rule for a head count that is not a power of two (as DNABERT-2)."""

    def geometric(n: int) -> list[float]:
        start = 2 ** (-8 / n)
        return [start ** (i + 1) for i in range(n)]

    closest = 2 ** math.floor(math.log2(num_heads))
    slopes = geometric(closest) + geometric(2 * closest)[0::2][: num_heads - closest]
    return torch.tensor(slopes, dtype=torch.float32)


def attention_bias(
    query_positions: torch.Tensor,
    key_positions: torch.Tensor,
    slopes: torch.Tensor | None,
    key_padding_mask: torch.Tensor | None,
    causal: bool,
    dtype: torch.dtype,
) -> torch.Tensor | None:
    """Additive attention mask [batch or 1, heads or 1, queries, keys]: ALiBi, padding and causality."""
    min_value = torch.finfo(dtype).min
    bias = None
    distance = key_positions[None, :] - query_positions[:, None]
    if slopes is not None:
        bias = (-slopes[:, None, None] * distance.abs()).to(dtype)[None]
    if causal:
        future = torch.zeros(distance.shape, dtype=dtype, device=distance.device).masked_fill(
            distance > 0, min_value
        )
        bias = future[None, None] if bias is None else bias + future
    if key_padding_mask is not None:
        padding = torch.zeros(key_padding_mask.shape, dtype=dtype, device=key_padding_mask.device)
        padding = padding.masked_fill(~key_padding_mask.bool(), min_value)[:, None, None, :]
        bias = padding if bias is None else bias + padding
        if causal:  # a padded future key is masked twice: keep the sum finite (-inf rows give NaN)
            bias = bias.clamp(min=min_value)
    return bias


class AttentionBias:
    """The additive mask of one attention stack (ALiBi, causality, key padding), built per block of queries so
    that a long window never holds a keys x keys matrix per head.

    All layers of a stack share one instance, and it keeps the last block it built: an input that fits in one
    block (every decoding step, every window up to `attention_block_size` tokens) builds its mask once per
    forward instead of once per layer.
    """

    def __init__(
        self,
        query_length: int,
        key_length: int,
        block_size: int,
        *,
        device: torch.device,
        dtype: torch.dtype,
        past_length: int = 0,
        slopes: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        causal: bool = False,
    ):
        if key_padding_mask is not None and key_padding_mask.bool().all():
            key_padding_mask = None  # nothing padded: one mask for the whole batch
        self.blocks = [
            slice(start, min(start + block_size, query_length))
            for start in range(0, query_length, block_size)
        ]
        self.key_length = key_length
        self.past_length = past_length
        self.slopes = slopes
        self.key_padding_mask = key_padding_mask
        self.causal = causal and query_length > 1  # one query, the newest, has no future keys
        self.device = device
        self.dtype = dtype
        self._last_block = (None, None)

    def __getitem__(self, rows: slice) -> torch.Tensor | None:
        if self.slopes is None and self.key_padding_mask is None and not self.causal:
            return None
        if self._last_block[0] != rows:
            bias = attention_bias(
                torch.arange(self.past_length + rows.start, self.past_length + rows.stop, device=self.device),
                torch.arange(self.key_length, device=self.device),
                self.slopes,
                self.key_padding_mask,
                self.causal,
                self.dtype,
            )
            self._last_block = (rows, bias)
        return self._last_block[1]


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask
    weights = F.softmax(scores.float(), dim=-1).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


class GffMoeAttention(nn.Module):
    """Multi-head attention with an additive bias (ALiBi, causality, padding: see `AttentionBias`), computed in
    blocks of queries. Used for encoder, decoder and cross-attention."""

    def __init__(self, config: GffMoeConfig, layer_idx: int | None = None):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.is_causal = False  # causality, where wanted, is part of the bias
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(
        self,
        hidden_states: torch.Tensor,
        bias: AttentionBias,
        key_value_states: torch.Tensor | None = None,
        cache: Cache | None = None,
    ) -> torch.Tensor:
        is_cross_attention = key_value_states is not None
        batch, length = hidden_states.shape[:2]
        query = self.q_proj(hidden_states).view(batch, length, -1, self.head_dim).transpose(1, 2)

        if is_cross_attention and cache is not None and cache.is_updated.get(self.layer_idx):
            layer_cache = cache.cross_attention_cache.layers[self.layer_idx]
            key, value = layer_cache.keys, layer_cache.values
        else:
            source = key_value_states if is_cross_attention else hidden_states
            key = self.k_proj(source).view(batch, source.shape[1], -1, self.head_dim).transpose(1, 2)
            value = self.v_proj(source).view(batch, source.shape[1], -1, self.head_dim).transpose(1, 2)
            if cache is not None:
                if is_cross_attention:
                    key, value = cache.cross_attention_cache.update(key, value, self.layer_idx)
                    cache.is_updated[self.layer_idx] = True
                else:
                    key, value = cache.self_attention_cache.update(key, value, self.layer_idx)

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        if length == 1 and query.device.type == "cpu":
            # A decoding step: on CPU two matmuls beat SDPA's kernel for one query 2x (0.8 vs 1.6 ms, 32 rows
            # by 633 keys of 4 x 32 dims, one thread).
            attention_interface = eager_attention_forward
        dropout = self.config.attention_probs_dropout_prob if self.training else 0.0
        outputs = [
            attention_interface(
                self, query[:, :, rows], key, value, bias[rows], dropout=dropout, scaling=self.scaling
            )[0]
            for rows in bias.blocks
        ]
        output = torch.cat(outputs, dim=1) if len(outputs) > 1 else outputs[0]
        return self.o_proj(output.reshape(batch, length, -1))


class GffMoeGegluMlp(nn.Module):
    """DNABERT-2's gated feed-forward: GELU (exact) of the first half times the second half."""

    def __init__(self, config: GffMoeConfig):
        super().__init__()
        self.gate_up_proj = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size)
        self.act_fn = ACT2FN["gelu"]
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(hidden_states).chunk(2, dim=-1)
        return self.down_proj(self.dropout(self.act_fn(gate) * up))


class GffMoeLmHeadTransform(nn.Module):
    """DNABERT-2's masked-LM head transform (dense, GELU, LayerNorm), reused before the tied output layer."""

    def __init__(self, config: GffMoeConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act_fn = ACT2FN["gelu"]
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.norm(self.act_fn(self.dense(hidden_states)))


class GffMoeEncoderLayer(GradientCheckpointingLayer):
    """Post-LayerNorm BERT layer: x = LN(x + attn(x)); x = LN(x + geglu(x))."""

    def __init__(self, config: GffMoeConfig, layer_idx: int):
        super().__init__()
        self.self_attn = GffMoeAttention(config, layer_idx)
        self.self_attn_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = GffMoeGegluMlp(config)
        self.mlp_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, bias: AttentionBias) -> torch.Tensor:
        attended = self.self_attn(hidden_states, bias)
        hidden_states = self.self_attn_norm(hidden_states + self.dropout(attended))
        return self.mlp_norm(hidden_states + self.dropout(self.mlp(hidden_states)))


@dataclass
class GffMoeEncoderOutput(BaseModelOutput):
    """The encoder output, which during generation also carries what every decoding step needs from the source and
    would otherwise recompute over all of it: the memory (encoder states plus base-pair offset features), the
    pointer keys and which source tokens can be pointed to. The model fills them in at the first cached step."""

    memory: torch.Tensor | None = None
    pointer_keys: torch.Tensor | None = None
    pointable: torch.Tensor | None = None
    token_offsets: torch.LongTensor | None = None  # the source spans it used (given, or derived from the ids)


class GffMoeEncoder(nn.Module):
    """The DNABERT-2 encoder (embeddings without positions, ALiBi layers, no pooler)."""

    main_input_name = "input_ids"

    def __init__(self, config: GffMoeConfig, embed_tokens: nn.Embedding):
        super().__init__()
        self.embed_tokens = embed_tokens
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.base_embedding = GffMoeBaseEmbedding(config)
        self.embedding_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.layers = nn.ModuleList(GffMoeEncoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.register_buffer("alibi_slopes", alibi_slopes(config.num_attention_heads), persistent=False)
        self.config = config

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        token_offsets: torch.LongTensor | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> GffMoeEncoderOutput:
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        if token_offsets is None:
            token_offsets = self.base_embedding.token_offsets(input_ids, attention_mask)
        embeddings = self.embed_tokens(input_ids) + self.token_type_embeddings(token_type_ids)
        embeddings = embeddings + self.base_embedding(input_ids, token_offsets).to(embeddings.dtype)
        hidden_states = self.dropout(self.embedding_norm(embeddings))
        length = hidden_states.shape[1]
        bias = AttentionBias(
            length,
            length,
            self.config.attention_block_size,
            device=hidden_states.device,
            dtype=hidden_states.dtype,
            slopes=self.alibi_slopes,
            key_padding_mask=attention_mask,
        )
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        for layer in self.layers:
            hidden_states = layer(hidden_states, bias)
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
        return GffMoeEncoderOutput(
            last_hidden_state=hidden_states, hidden_states=all_hidden_states, token_offsets=token_offsets
        )


class GffMoeBaseEmbedding(nn.Module):
    """The bases that BPE glues into one token, spelled out: a vector per (base, place in the token) and per
    (base, codon phase in the window), summed over the token's bases. Shared by all tokens, so a small model
    sees base composition and reading frame (third-position GC, stop codons) without learning them token by
    token. Zero-initialised: a DNABERT-2 encoder starts out unchanged.

    `token_bases` (saved with the weights) spells every vocabulary token in `BASE_CODES`, NO_BASE past its end
    or for a token that is not DNA; `set_dna_vocabulary` fills it from the tokenizer. It also gives every
    DNA token's length, hence the source's base-pair spans when the caller passes none (`token_offsets`).
    """

    def __init__(self, config: GffMoeConfig):
        super().__init__()
        self.max_offset = config.max_offset
        self.register_buffer(
            "token_bases", torch.full((config.vocab_size, config.max_offset), NO_BASE, dtype=torch.uint8)
        )
        self.by_position = nn.Parameter(torch.zeros(4 * config.max_offset, config.hidden_size))
        self.by_phase = nn.Parameter(torch.zeros(4 * 3, config.hidden_size))

    def set_dna_vocabulary(self, tokens: list[str], unk_token: str = "[UNK]"):
        """Spell token id i as `tokens[i]` when it is DNA (ACGTN) that fits `max_offset`; mark `unk_token`."""
        spelled = torch.full((len(self.token_bases), self.max_offset), NO_BASE, dtype=torch.uint8)
        for token_id, token in enumerate(tokens[: len(spelled)]):
            if token and len(token) <= self.max_offset and set(token) <= set(BASE_CODES):
                spelled[token_id, : len(token)] = torch.tensor([BASE_CODES[b] for b in token])
            elif token == unk_token:
                spelled[token_id, 0] = UNKNOWN_LENGTH
        self.token_bases.copy_(spelled)

    def token_offsets(
        self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None
    ) -> torch.LongTensor:
        """Each token's half-open base span, DNA tokens laid end to end ((0, 0) for the others), as
        `tokenization.encode_source` returns them for DNA that the tokenizer has spelled."""
        known = input_ids < len(self.token_bases)
        spelled = self.token_bases[input_ids.clamp(max=len(self.token_bases) - 1)]
        spelled = spelled.masked_fill(~known[..., None], NO_BASE)
        unknown = spelled[..., 0] == UNKNOWN_LENGTH
        if attention_mask is not None:
            unknown &= attention_mask.bool()
        if unknown.any():
            raise ValueError(
                "the source has [UNK] tokens, whose length in bases is unknown: upper-case the DNA and "
                "replace other characters (tokenization.clean_dna), or pass `token_offsets`"
            )
        lengths = (spelled != NO_BASE).sum(-1)
        ends = lengths.cumsum(-1)
        return torch.stack([ends - lengths, ends], -1) * (lengths > 0)[..., None]

    def resize(self, vocab_size: int):
        """Keep the spelling of the first `vocab_size` tokens; tokens added later are not DNA."""
        grown = self.token_bases.new_full((vocab_size, self.max_offset), NO_BASE)
        kept = min(vocab_size, len(self.token_bases))
        grown[:kept] = self.token_bases[:kept]
        self.token_bases = grown

    def forward(self, input_ids: torch.LongTensor, token_offsets: torch.LongTensor) -> torch.Tensor:
        # Only as many in-token places as the longest token of the batch.
        longest = max(int((token_offsets[..., 1] - token_offsets[..., 0]).max()), 1)
        known = input_ids < len(self.token_bases)
        bases = self.token_bases[input_ids.clamp(max=len(self.token_bases) - 1), :longest].long()
        bases = bases.masked_fill(~known[..., None], NO_BASE)
        one_hot = F.one_hot(bases, UNKNOWN_LENGTH + 1)[..., :4].to(self.by_position.dtype)  # [B, S, K, 4]
        places = torch.arange(longest, device=input_ids.device)
        phase = F.one_hot((token_offsets[..., :1] + places) % 3, 3).to(one_hot.dtype)  # [B, S, K, 3]
        by_phase = torch.einsum("bskc,bskp->bscp", one_hot, phase).flatten(-2)
        return one_hot.flatten(-2) @ self.by_position[: 4 * longest] + by_phase @ self.by_phase


class GffMoeTokenOffsetEmbedding(nn.Module):
    """Fourier features of each source token's base-pair start and end offsets, projected to the model width.

    Periods run geometrically from 2 bp to 2**17 bp, so the features tell both the codon phase and the
    place in a 100 kb window. Special tokens (span (0, 0)) get no offset vector.
    """

    def __init__(self, config: GffMoeConfig):
        super().__init__()
        periods = 2.0 ** torch.linspace(1, 17, config.offset_frequencies)
        self.register_buffer("angular_frequencies", 2 * math.pi / periods, persistent=False)
        self.proj = nn.Linear(4 * config.offset_frequencies, config.hidden_size)

    def forward(self, token_offsets: torch.LongTensor) -> torch.Tensor:
        angles = token_offsets.float()[..., None] * self.angular_frequencies  # [B, S, 2, F]
        features = torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2)  # [B, S, 4F]
        is_sequence_token = (token_offsets[..., 1] > token_offsets[..., 0])[..., None]
        return self.proj(features.to(self.proj.weight.dtype)) * is_sequence_token


class GffMoeTrackHead(nn.Module):
    """Per-base gene-structure logits from the encoder: each base's token state plus a vector for the base and
    its place in the token (the bases a BPE token glues together, as `GffMoeBaseEmbedding` spells them), with
    `config.track_conv_channels` plus what dilated convolutions read around it (+-160 bp), through one GELU
    layer to the classes of the track's four columns (`TRACK_GROUPS`).

    Returns the logits of every base the tokens cover, flat [n_bases, sum(TRACK_GROUPS)], and where each base
    lies: (row, position in the window)."""

    def __init__(self, config: GffMoeConfig):
        super().__init__()
        self.by_place_and_base = nn.Embedding(config.max_offset * BASE_KINDS, config.hidden_size)
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act_fn = ACT2FN["gelu"]
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.out = nn.Linear(config.hidden_size, sum(TRACK_GROUPS))
        if config.track_conv_channels:
            channels = config.track_conv_channels
            self.conv_in = nn.Linear(config.hidden_size, channels)
            self.conv_base = nn.Embedding(BASE_KINDS, channels)
            # kernel 9, dilations 1-27: each base sees +-160 bp, a splice site's consensus and codon statistics
            self.convs = nn.ModuleList(
                nn.Conv1d(channels, channels, 9, padding=4 * d, dilation=d) for d in (1, 3, 9, 27)
            )
            self.conv_out = nn.Linear(channels, config.hidden_size)

    def forward(
        self, states: torch.Tensor, input_ids: torch.LongTensor, token_offsets: torch.LongTensor, token_bases
    ) -> tuple[torch.Tensor, torch.LongTensor, torch.LongTensor]:
        batch, source_length = input_ids.shape
        lengths = (token_offsets[..., 1] - token_offsets[..., 0]).clamp(min=0).flatten()
        token = torch.repeat_interleave(torch.arange(lengths.numel(), device=lengths.device), lengths)
        first = torch.cumsum(lengths, 0) - lengths  # each token's first flat base
        place = torch.arange(token.numel(), device=lengths.device) - first[token]
        ids = input_ids.flatten()[token]
        known = ids < len(token_bases)
        base = token_bases[
            ids.clamp(max=len(token_bases) - 1), place.clamp(max=token_bases.shape[1] - 1)
        ].long()
        base = base.masked_fill(~known, NO_BASE)
        features = states.flatten(0, 1)[token] + self.by_place_and_base(place * BASE_KINDS + base).to(
            states.dtype
        )
        row = token // source_length
        position = token_offsets[..., 0].flatten()[token] + place
        if hasattr(self, "convs") and len(position):  # the bases along their windows [batch, channels, bases]
            flat = self.conv_in(features) + self.conv_base(base).to(features.dtype)
            shape = (batch, int(position.max()) + 1)
            hidden = per_base(flat, row, position, shape).transpose(1, 2)
            # zero past each window's end after every layer, as the convolution's own padding: a window's
            # logits do not depend on the batch it is in
            inside = per_base(flat.new_ones(len(position), 1), row, position, shape).transpose(1, 2)
            for conv in self.convs:
                hidden = (hidden + F.gelu(conv(hidden))) * inside
            features = features + self.conv_out(hidden.transpose(1, 2)[row, position])
        logits = self.out(self.norm(self.act_fn(self.dense(features))))
        return logits, row, position


def per_base(values: torch.Tensor, row: torch.LongTensor, position: torch.LongTensor, shape) -> torch.Tensor:
    """Flat per-base rows laid out as [batch, bases, ...] (zeros where no base lies; bases past shape[1] dropped)."""
    dense = values.new_zeros(*shape, *values.shape[1:])
    inside = position < shape[1]
    dense[row[inside], position[inside]] = values[inside]
    return dense


def track_loss(logits: torch.Tensor, labels: torch.LongTensor) -> torch.Tensor:
    """Mean cross-entropy over the track's columns; `labels` [n_bases, 4], -100 ignored."""
    groups = logits.float().split(TRACK_GROUPS, dim=-1)
    losses = [F.cross_entropy(g, labels[:, i], ignore_index=-100) for i, g in enumerate(groups)]
    return torch.stack(losses).nanmean()


class GffMoeTopKRouter(nn.Module):
    """Softmax router: every token goes to its `top_k` most probable experts, weights renormalised to sum to 1.
    No capacity limit, so no token is ever dropped."""

    def __init__(self, config: GffMoeConfig):
        super().__init__()
        self.top_k = config.moe_top_k
        self.weight = nn.Parameter(torch.empty(config.num_experts, config.hidden_size))

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        router_logits = F.linear(
            hidden_states, self.weight
        ).float()  # float32 keeps the z-loss stable in bf16
        top_k_probs, top_k_index = torch.topk(router_logits.softmax(dim=-1), self.top_k, dim=-1)
        top_k_weights = top_k_probs / top_k_probs.sum(dim=-1, keepdim=True)
        return router_logits, top_k_weights.to(hidden_states.dtype), top_k_index


@use_experts_implementation(has_bias=True)
class GffMoeExperts(nn.Module):
    """GEGLU experts stored as 3D tensors, so transformers' grouped matmul dispatch (sort tokens by expert, one
    grouped GEMM per projection) runs them; `forward` below is the eager path (`experts_implementation="eager"`),
    the same sort-based dispatch with one matmul per used expert."""

    def __init__(self, config: GffMoeConfig):
        super().__init__()
        self.num_experts = config.num_experts
        hidden, inner = config.hidden_size, config.expert_intermediate_size
        self.gate_up_proj = nn.Parameter(torch.empty(self.num_experts, 2 * inner, hidden))
        self.gate_up_proj_bias = nn.Parameter(torch.zeros(self.num_experts, 2 * inner))
        self.down_proj = nn.Parameter(torch.empty(self.num_experts, hidden, inner))
        self.down_proj_bias = nn.Parameter(torch.zeros(self.num_experts, hidden))
        self.act_fn = ACT2FN["gelu"]

    def forward(self, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor):
        # Sort the (token, slot) pairs by expert, so that each expert reads one contiguous block of rows.
        expert_ids, order = top_k_index.flatten().sort()
        token_idx = order // top_k_index.shape[-1]
        rows_per_expert = torch.bincount(expert_ids, minlength=self.num_experts).tolist()
        # unbind, not indexing: indexing one expert would backpropagate a full-size zero gradient per expert.
        # index_select gathers several times faster than advanced indexing on CPU, and each expert's routing
        # weights are applied while its output is still in cache (bench/moe.py)
        experts = zip(
            hidden_states.index_select(0, token_idx).split(rows_per_expert),
            top_k_weights.flatten()[order, None].split(rows_per_expert),
            self.gate_up_proj.unbind(),
            self.gate_up_proj_bias.unbind(),
            self.down_proj.unbind(),
            self.down_proj_bias.unbind(),
            strict=True,
        )
        weighted = []
        for rows, weights, gate_up_proj, gate_up_bias, down_proj, down_bias in experts:
            if len(rows):
                gate, up = F.linear(rows, gate_up_proj, gate_up_bias).chunk(2, -1)
                weighted.append(F.linear(self.act_fn(gate) * up, down_proj, down_bias) * weights)
        return torch.zeros_like(hidden_states).index_add_(0, token_idx, torch.cat(weighted))


class GffMoeSparseMoeBlock(nn.Module):
    def __init__(self, config: GffMoeConfig):
        super().__init__()
        self.router = GffMoeTopKRouter(config)
        self.experts = GffMoeExperts(config)

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns the expert mixture, the router logits and the chosen experts (both [tokens, ...])."""
        shape = hidden_states.shape
        flat = hidden_states.reshape(-1, shape[-1])
        router_logits, top_k_weights, top_k_index = self.router(flat)
        return self.experts(flat, top_k_index, top_k_weights).reshape(shape), router_logits, top_k_index


def router_losses(
    router_logits: torch.Tensor,
    top_k_index: torch.Tensor,
    num_experts: int,
    token_mask: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Switch load-balancing loss, router z-loss and logging statistics of one layer ([tokens, experts] logits,
    [tokens, top_k] choices), or of several at once (a leading layer dimension, kept in every result).

    aux = E * sum_e f_e * P_e, with f_e the fraction of routed slots sent to expert e and P_e its mean router
    probability; it is 1 exactly when load and probability are uniform, larger when they concentrate.
    """
    if token_mask is not None:
        keep = token_mask.reshape(-1).bool()
        router_logits, top_k_index = router_logits[..., keep, :], top_k_index[..., keep, :]
    probs = router_logits.softmax(dim=-1)
    slots = max(top_k_index.shape[-2] * top_k_index.shape[-1], 1)
    load = F.one_hot(top_k_index, num_experts).sum(dim=(-3, -2)) / slots
    return {
        "aux_loss": num_experts * (load * probs.mean(dim=-2)).sum(-1),
        "z_loss": torch.logsumexp(router_logits, dim=-1).square().mean(-1),
        "expert_load": load.detach(),
        "router_entropy": -(probs * probs.clamp_min(1e-9).log()).sum(-1).mean(-1).detach(),
    }


class GffMoeDecoderLayer(GradientCheckpointingLayer):
    """Post-LayerNorm decoder layer: causal ALiBi self-attention, cross-attention, MoE feed-forward."""

    def __init__(self, config: GffMoeConfig, layer_idx: int):
        super().__init__()
        self.self_attn = GffMoeAttention(config, layer_idx)
        self.self_attn_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.cross_attn = GffMoeAttention(config, layer_idx)
        self.cross_attn_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.moe = GffMoeSparseMoeBlock(config)
        self.moe_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        hidden_states: torch.Tensor,
        memory: torch.Tensor,
        self_attn_bias: AttentionBias,
        cross_attn_bias: AttentionBias,
        cache: EncoderDecoderCache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        attended = self.self_attn(hidden_states, self_attn_bias, cache=cache)
        hidden_states = self.self_attn_norm(hidden_states + self.dropout(attended))
        attended = self.cross_attn(hidden_states, cross_attn_bias, key_value_states=memory, cache=cache)
        hidden_states = self.cross_attn_norm(hidden_states + self.dropout(attended))
        moe_output, router_logits, top_k_index = self.moe(hidden_states)
        return self.moe_norm(hidden_states + self.dropout(moe_output)), router_logits, top_k_index


class GffMoeDecoder(nn.Module):
    def __init__(self, config: GffMoeConfig):
        super().__init__()
        self.embedding_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.layers = nn.ModuleList(GffMoeDecoderLayer(config, i) for i in range(config.decoder_layers))
        self.register_buffer("alibi_slopes", alibi_slopes(config.num_attention_heads), persistent=False)
        self.config = config

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
        output_hidden_states: bool = False,
    ) -> tuple[BaseModelOutputWithPastAndCrossAttentions, list[torch.Tensor], list[torch.Tensor]]:
        past_length = cache.self_attention_cache.get_seq_length() if cache is not None else 0
        hidden_states = self.dropout(self.embedding_norm(inputs_embeds))
        length, block_size = hidden_states.shape[1], self.config.attention_block_size
        self_attn_bias = AttentionBias(
            length,
            past_length + length,
            block_size,
            device=hidden_states.device,
            dtype=hidden_states.dtype,
            past_length=past_length,
            slopes=self.alibi_slopes,
            key_padding_mask=attention_mask,
            causal=True,
        )
        cross_attn_bias = AttentionBias(
            length,
            memory.shape[1],
            block_size,
            device=hidden_states.device,
            dtype=hidden_states.dtype,
            key_padding_mask=memory_mask,
        )
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        router_logits, top_k_indices = [], []
        for layer in self.layers:
            hidden_states, logits, top_k_index = layer(
                hidden_states, memory, self_attn_bias, cross_attn_bias, cache=cache
            )
            router_logits.append(logits)
            top_k_indices.append(top_k_index)
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
        output = BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden_states, cache=cache, hidden_states=all_hidden_states
        )
        return output, router_logits, top_k_indices


@dataclass
class GffMoeSeq2SeqLMOutput(Seq2SeqLMOutput):
    """Seq2SeqLMOutput plus the router losses and per-layer router statistics ([decoder_layers, num_experts]
    expert load, [decoder_layers] mean router entropy) for logging, and, with a track head, the per-base track
    loss and logits ([batch, window_bases, sum(TRACK_GROUPS)], zeros past a window's end)."""

    aux_loss: torch.Tensor | None = None
    z_loss: torch.Tensor | None = None
    expert_load: torch.Tensor | None = None
    router_entropy: torch.Tensor | None = None
    router_logits: tuple[torch.Tensor, ...] | None = None
    track_loss: torch.Tensor | None = None
    track_logits: torch.Tensor | None = None


class GffMoePreTrainedModel(PreTrainedModel):
    config: GffMoeConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["GffMoeEncoderLayer", "GffMoeDecoderLayer"]
    _supports_sdpa = True
    _supports_flash_attn = False  # ALiBi is an additive bias
    _supports_flex_attn = False

    def get_correct_experts_implementation(self, requested_experts: str | None) -> str:
        # transformers defaults to grouped_mm; on a machine without a GPU, torch's CPU grouped_mm is slower
        # than GffMoeExperts' one matmul per expert (bench/moe.py), so the default there is "eager".
        if requested_experts is None and not torch.cuda.is_available():
            requested_experts = "eager"
        return super().get_correct_experts_implementation(requested_experts)

    def _init_weights(self, module):
        super()._init_weights(module)
        std = self.config.initializer_range
        if isinstance(module, GffMoeExperts):
            init.normal_(module.gate_up_proj, mean=0.0, std=std)
            init.normal_(module.down_proj, mean=0.0, std=std)
            init.zeros_(module.gate_up_proj_bias)
            init.zeros_(module.down_proj_bias)
        elif isinstance(module, GffMoeTopKRouter):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, (GffMoeEncoder, GffMoeDecoder)):
            init.copy_(module.alibi_slopes, alibi_slopes(self.config.num_attention_heads))
        elif isinstance(module, GffMoeBaseEmbedding):
            init.zeros_(module.by_position)
            init.zeros_(module.by_phase)
            init.constant_(module.token_bases, NO_BASE)
        elif isinstance(module, GffMoeTokenOffsetEmbedding):
            periods = 2.0 ** torch.linspace(1, 17, self.config.offset_frequencies)
            init.copy_(module.angular_frequencies, 2 * math.pi / periods)


class GffMoeForConditionalGeneration(GffMoePreTrainedModel, GenerationMixin):
    """DNA window in, annotation tokens out. Also what `AutoModel` loads (a base model could not generate)."""

    _tied_weights_keys = {"encoder.embed_tokens.weight": "shared.weight", "lm_head.weight": "shared.weight"}

    def __init__(self, config: GffMoeConfig):
        super().__init__(config)
        self.shared = nn.Embedding(config.vocab_size, config.hidden_size)
        self.encoder = GffMoeEncoder(config, self.shared)
        self.offset_embedding = GffMoeTokenOffsetEmbedding(config)
        self.decoder = GffMoeDecoder(config)
        self.lm_head_transform = GffMoeLmHeadTransform(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size)
        if config.coordinate_scheme == "pointer":
            self.pointer_query = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
            self.pointer_key = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
            self.pointer_embedding = nn.Linear(config.hidden_size, config.hidden_size)
        if config.track_loss_weight > 0:
            self.track_head = GffMoeTrackHead(config)
        self.post_init()

    @property
    def uses_pointers(self) -> bool:
        return self.config.coordinate_scheme == "pointer"

    def get_input_embeddings(self) -> nn.Embedding:
        return self.shared

    def set_input_embeddings(self, new_embeddings: nn.Embedding):
        self.shared = new_embeddings
        self.encoder.embed_tokens = new_embeddings
        self.encoder.base_embedding.resize(new_embeddings.num_embeddings)

    def set_dna_vocabulary(self, tokens: list[str], unk_token: str = "[UNK]"):
        """Tell the encoder how each vocabulary token is spelled (`tokenizer.convert_ids_to_tokens`), so
        it can see the bases and reading frame inside BPE tokens and derive `token_offsets` from the ids
        (see `GffMoeBaseEmbedding`)."""
        self.encoder.base_embedding.set_dna_vocabulary(tokens, unk_token)

    def get_encoder(self, modality=None) -> GffMoeEncoder:
        return self.encoder

    def encoder_memory(
        self, encoder_hidden_states: torch.Tensor, token_offsets: torch.LongTensor
    ) -> torch.Tensor:
        """What the decoder attends and points to: encoder states plus each token's base-pair offsets."""
        return encoder_hidden_states + self.offset_embedding(token_offsets).to(encoder_hidden_states.dtype)

    def embed_decoder_inputs(self, decoder_input_ids: torch.LongTensor, memory: torch.Tensor) -> torch.Tensor:
        """Vocabulary ids embed as usual; pointer ids `vocab_size + i` embed as the projected memory vector i."""
        vocab_size = self.config.vocab_size
        is_pointer = decoder_input_ids >= vocab_size
        embeddings = self.shared(decoder_input_ids.clamp(max=vocab_size - 1))
        if self.uses_pointers and is_pointer.any():
            source_index = (decoder_input_ids - vocab_size).clamp(0, memory.shape[1] - 1)
            pointed = torch.gather(memory, 1, source_index[..., None].expand(-1, -1, memory.shape[-1]))
            embeddings = torch.where(is_pointer[..., None], self.pointer_embedding(pointed), embeddings)
        return embeddings

    def decoder_context(
        self, encoder_states: torch.Tensor, attention_mask: torch.Tensor, token_offsets: torch.LongTensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The memory, and in the pointer scheme the pointer keys and the mask of pointable source tokens
        (sequence tokens, not specials or padding): all the decoder needs from the encoder pass."""
        memory = self.encoder_memory(encoder_states, token_offsets)
        if not self.uses_pointers:
            return memory, None, None
        pointable = attention_mask.bool() & (token_offsets[..., 1] > token_offsets[..., 0])
        return memory, self.pointer_key(memory), pointable

    def pointer_logits(
        self, decoder_states: torch.Tensor, pointer_keys: torch.Tensor, pointable: torch.Tensor
    ) -> torch.Tensor:
        """Scaled dot product of each decoder state with each pointer key; -inf where nothing can be pointed to."""
        scores = self.pointer_query(decoder_states) @ pointer_keys.transpose(1, 2)
        scores = scores * self.config.hidden_size**-0.5
        return scores.masked_fill(~pointable[:, None, :], float("-inf"))

    def track(
        self, encoder_states: torch.Tensor, input_ids: torch.LongTensor, token_offsets: torch.LongTensor
    ) -> tuple[torch.Tensor, torch.LongTensor, torch.LongTensor]:
        """The track head's flat per-base logits and each base's (row, position) (see `GffMoeTrackHead`)."""
        return self.track_head(
            encoder_states, input_ids, token_offsets, self.encoder.base_embedding.token_bases
        )

    def track_logits(
        self, encoder_states: torch.Tensor, input_ids: torch.LongTensor, token_offsets: torch.LongTensor
    ) -> torch.Tensor:
        """Per-base track logits [batch, window_bases, sum(TRACK_GROUPS)] (zeros past a window's end)."""
        logits, row, position = self.track(encoder_states, input_ids, token_offsets)
        length = int(position.max()) + 1 if len(position) else 0
        return per_base(logits, row, position, (input_ids.shape[0], length))

    def _shift_right(self, labels: torch.LongTensor) -> torch.LongTensor:
        shifted = labels.new_full(labels.shape, self.config.pad_token_id)
        shifted[:, 1:] = labels[:, :-1]
        shifted[:, 0] = self.config.decoder_start_token_id
        return shifted.masked_fill(shifted == -100, self.config.pad_token_id)

    def prepare_decoder_input_ids_from_labels(self, labels: torch.LongTensor) -> torch.LongTensor:
        return self._shift_right(labels)

    @staticmethod
    def _reorder_cache(cache: EncoderDecoderCache, beam_idx: torch.LongTensor) -> EncoderDecoderCache:
        """Beam search's reordering, of the self-attention cache only: the beams of one window share its
        source, so their cross-attention keys and values are equal and any reordering within the window's
        beams leaves them as they are (reordering them took 60 % of an 8-beam annotation)."""
        cache.self_attention_cache.reorder_cache(beam_idx)
        return cache

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_offsets: torch.LongTensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        cache: Cache | None = None,
        past_key_values: Cache | None = None,
        labels: torch.LongTensor | None = None,
        track_labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_router_logits: bool = False,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> GffMoeSeq2SeqLMOutput:
        r"""
        token_offsets (`torch.LongTensor` of shape `(batch_size, source_length, 2)`, *optional*):
            Half-open base-pair span of each source token inside the window; (0, 0) for special tokens.
            Derived from the ids when not given (DNA tokens laid end to end, as the tokenizer spells them).
        labels (`torch.LongTensor` of shape `(batch_size, target_length)`, *optional*):
            Target ids: vocabulary ids, pointer ids `vocab_size + i` (pointer scheme), -100 to ignore.
        track_labels (`torch.LongTensor` of shape `(batch_size, window_bases, 4)`, *optional*):
            The per-base track (`tokenization.track.gene_track`), -100 to ignore; used by a model with a track
            head when this forward runs the encoder.
        cache / past_key_values (`EncoderDecoderCache`, *optional*):
            The decoding cache; `generate()` passes it as `cache`.
        output_router_logits (`bool`, *optional*):
            Return each decoder layer's router logits, and the router losses and statistics even without labels
            (with labels they are always computed; a generation step skips them).
        """
        cache = cache if cache is not None else past_key_values
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        runs_encoder = encoder_outputs is None
        encoder_outputs = self._encoder_outputs(
            input_ids, attention_mask, token_offsets, encoder_outputs, output_hidden_states
        )
        if token_offsets is None:
            token_offsets = self._derived_token_offsets(encoder_outputs)
        encoder_states = encoder_outputs.last_hidden_state
        if attention_mask is None:
            attention_mask = torch.ones(
                encoder_states.shape[:2], dtype=torch.long, device=encoder_states.device
            )
        memory, pointer_keys, pointable = self._reused_decoder_context(
            encoder_outputs, attention_mask, token_offsets, reuse=cache is not None
        )
        if labels is not None:
            self._check_labels(labels, memory.shape[1])
            if decoder_input_ids is None:
                decoder_input_ids = self._shift_right(labels)
        cache = self._decoding_cache(cache, use_cache, labels)

        decoder_outputs, router_logits, top_k_indices = self.decoder(
            self.embed_decoder_inputs(decoder_input_ids, memory),
            memory,
            memory_mask=attention_mask,
            attention_mask=decoder_attention_mask,
            cache=cache,
            output_hidden_states=output_hidden_states,
        )
        decoder_states = decoder_outputs.last_hidden_state
        logits = self.lm_head(self.lm_head_transform(decoder_states))
        if self.uses_pointers:
            logits = torch.cat(
                [logits, self.pointer_logits(decoder_states, pointer_keys, pointable).to(logits.dtype)], -1
            )

        stats = {}
        if labels is not None or output_router_logits:
            token_mask = labels.ne(-100) if labels is not None else decoder_attention_mask
            stats = router_losses(
                torch.stack(router_logits), torch.stack(top_k_indices), self.config.num_experts, token_mask
            )
            stats["aux_loss"], stats["z_loss"] = stats["aux_loss"].mean(), stats["z_loss"].mean()
        base_loss = base_logits = None
        if runs_encoder and track_labels is not None and hasattr(self, "track_head"):
            base_loss, base_logits = self._track_loss(encoder_states, input_ids, token_offsets, track_labels)
        return GffMoeSeq2SeqLMOutput(
            loss=self._loss(logits, labels, stats, base_loss) if labels is not None else None,
            logits=logits,
            cache=cache,
            decoder_hidden_states=decoder_outputs.hidden_states,
            encoder_last_hidden_state=encoder_states,
            encoder_hidden_states=encoder_outputs.hidden_states,
            router_logits=tuple(router_logits) if output_router_logits else None,
            track_loss=base_loss,
            track_logits=base_logits,
            **stats,
        )

    def _encoder_outputs(
        self, input_ids, attention_mask, token_offsets, encoder_outputs, output_hidden_states: bool
    ) -> BaseModelOutput:
        """Run the encoder, or take the outputs given (generate() passes them; a tuple is wrapped)."""
        if encoder_outputs is None:
            return self.encoder(
                input_ids,
                attention_mask,
                token_offsets=token_offsets,
                output_hidden_states=output_hidden_states,
                return_dict=True,
            )
        if not isinstance(encoder_outputs, BaseModelOutput):
            return BaseModelOutput(last_hidden_state=encoder_outputs[0])
        return encoder_outputs

    @staticmethod
    def _derived_token_offsets(encoder_outputs: BaseModelOutput) -> torch.LongTensor:
        """The spans the encoder derived from the ids (it does when none are given), or a clear error."""
        token_offsets = getattr(encoder_outputs, "token_offsets", None)
        if token_offsets is None or not token_offsets.any():
            raise ValueError(
                "GffMoe needs `token_offsets` [batch, source_length, 2] (see tokenization.encode_source): "
                "no source token is spelled as DNA (model.set_dna_vocabulary) to derive them from"
            )
        return token_offsets

    def _reused_decoder_context(
        self, encoder_outputs: BaseModelOutput, attention_mask, token_offsets, reuse: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """`decoder_context`, computed once per generate() call: generate() hands the same encoder outputs to
        every cached step, so the first one stores the memory, pointer keys and pointable mask in them."""
        if getattr(encoder_outputs, "memory", None) is not None:
            return encoder_outputs.memory, encoder_outputs.pointer_keys, encoder_outputs.pointable
        context = self.decoder_context(encoder_outputs.last_hidden_state, attention_mask, token_offsets)
        if reuse and isinstance(encoder_outputs, GffMoeEncoderOutput):
            encoder_outputs["memory"], encoder_outputs["pointer_keys"], encoder_outputs["pointable"] = context
        return context

    def _decoding_cache(self, cache: Cache | None, use_cache: bool | None, labels) -> Cache | None:
        """The cache this forward writes: the one given, a new one, or none (training has no use for one)."""
        if use_cache is None:
            use_cache = self.config.use_cache and labels is None
        if self.training and self.is_activation_checkpointing:
            use_cache = False  # a replayed layer would write the cache twice
        if not use_cache:
            return None
        return cache if cache is not None else EncoderDecoderCache(DynamicCache(), DynamicCache())

    def _loss(self, logits: torch.Tensor, labels: torch.LongTensor, stats: dict, track_loss) -> torch.Tensor:
        """Cross-entropy plus the weighted router losses and, with a track head, the weighted track loss."""
        loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100)
        loss = loss + self.config.router_aux_loss_coef * stats["aux_loss"]
        loss = loss + self.config.router_z_loss_coef * stats["z_loss"]
        if track_loss is not None:
            loss = loss + self.config.track_loss_weight * track_loss
        return loss

    def _track_loss(
        self, encoder_states, input_ids, token_offsets, track_labels
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Track loss over the bases the source covers, and the per-base logits as `track_logits` returns them."""
        logits, row, position = self.track(encoder_states, input_ids, token_offsets)
        inside = position < track_labels.shape[1]
        labels = track_labels.new_full((len(position), track_labels.shape[-1]), -100)
        labels[inside] = track_labels[row[inside], position[inside]].long()
        return track_loss(logits, labels), per_base(logits, row, position, track_labels.shape[:2])

    def _check_labels(self, labels: torch.LongTensor, source_length: int):
        limit = self.config.vocab_size + (source_length if self.uses_pointers else 0)
        bad = (labels != -100) & ((labels < 0) | (labels >= limit))
        if bad.any():
            raise ValueError(
                f"label id {labels[bad][0].item()} is outside [0, {limit}) (vocab_size {self.config.vocab_size}"
                f"{f' + {source_length} pointer slots' if self.uses_pointers else ''}, coordinate_scheme "
                f"{self.config.coordinate_scheme!r})"
            )


# Saving copies this file and configuration_gffmoe.py next to the weights (config.auto_map names both auto classes).
GffMoeForConditionalGeneration.register_for_auto_class("AutoModelForSeq2SeqLM")

__all__ = ["GffMoeForConditionalGeneration", "GffMoePreTrainedModel", "alibi_slopes"]
