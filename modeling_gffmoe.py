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

try:  # a saved Hub directory loads this file as part of a package
    from .configuration_gffmoe import GffMoeConfig
except ImportError:  # the repository checkout imports it as a top-level module
    from configuration_gffmoe import GffMoeConfig


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
        bias = padding if bias is None else (bias + padding).clamp(min=min_value)
    return bias


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
    """Multi-head attention with an additive ALiBi bias, computed in query chunks so that a long window never
    holds a full keys x keys score matrix per head. Used for encoder, decoder and cross-attention."""

    def __init__(
        self, config: GffMoeConfig, layer_idx: int | None = None, is_causal: bool = False, use_alibi=True
    ):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.is_causal = is_causal
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size)
        slopes = alibi_slopes(self.num_heads) if use_alibi else None
        self.register_buffer("alibi_slopes", slopes, persistent=False)

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_value_states: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        past_length: int = 0,
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
        key_positions = torch.arange(key.shape[2], device=query.device)
        dropout = self.config.attention_probs_dropout_prob if self.training else 0.0
        chunk = self.config.attention_chunk_size
        outputs = []
        for start in range(0, length, chunk):
            query_positions = (
                torch.arange(start, min(start + chunk, length), device=query.device) + past_length
            )
            bias = attention_bias(
                query_positions,
                key_positions,
                self.alibi_slopes,
                key_padding_mask,
                self.is_causal,
                query.dtype,
            )
            output, _ = attention_interface(
                self,
                query[:, :, start : start + chunk],
                key,
                value,
                bias,
                dropout=dropout,
                scaling=self.scaling,
                is_causal=False,
            )
            outputs.append(output)
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

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        attended = self.self_attn(hidden_states, key_padding_mask=attention_mask)
        hidden_states = self.self_attn_norm(hidden_states + self.dropout(attended))
        return self.mlp_norm(hidden_states + self.dropout(self.mlp(hidden_states)))


class GffMoeEncoder(nn.Module):
    """The DNABERT-2 encoder (embeddings without positions, ALiBi layers, no pooler)."""

    main_input_name = "input_ids"

    def __init__(self, config: GffMoeConfig, embed_tokens: nn.Embedding):
        super().__init__()
        self.embed_tokens = embed_tokens
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.embedding_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.layers = nn.ModuleList(GffMoeEncoderLayer(config, i) for i in range(config.num_hidden_layers))

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        output_hidden_states: bool = False,
        return_dict: bool = True,
        **kwargs,
    ) -> BaseModelOutput:
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        embeddings = self.embed_tokens(input_ids) + self.token_type_embeddings(token_type_ids)
        hidden_states = self.dropout(self.embedding_norm(embeddings))
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        for layer in self.layers:
            hidden_states = layer(hidden_states, attention_mask)
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
        return BaseModelOutput(last_hidden_state=hidden_states, hidden_states=all_hidden_states)


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
    grouped GEMM per projection) runs them; `forward` below is the readable eager reference."""

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
        output = torch.zeros_like(hidden_states)
        for expert in top_k_index.unique().tolist():
            token_idx, slot = torch.where(top_k_index == expert)
            gate, up = F.linear(
                hidden_states[token_idx], self.gate_up_proj[expert], self.gate_up_proj_bias[expert]
            ).chunk(2, -1)
            expert_out = F.linear(self.act_fn(gate) * up, self.down_proj[expert], self.down_proj_bias[expert])
            output.index_add_(0, token_idx, expert_out * top_k_weights[token_idx, slot, None])
        return output


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
    """Switch load-balancing loss, router z-loss and logging statistics for one layer.

    aux = E * sum_e f_e * P_e, with f_e the fraction of routed slots sent to expert e and P_e its mean router
    probability; it is 1 exactly when load and probability are uniform, larger when they concentrate.
    """
    if token_mask is not None:
        keep = token_mask.reshape(-1).bool()
        router_logits, top_k_index = router_logits[keep], top_k_index[keep]
    probs = router_logits.softmax(dim=-1)
    load = F.one_hot(top_k_index, num_experts).float().sum(dim=(0, 1)) / max(top_k_index.numel(), 1)
    return {
        "aux_loss": num_experts * (load * probs.mean(dim=0)).sum(),
        "z_loss": torch.logsumexp(router_logits, dim=-1).square().mean(),
        "expert_load": load.detach(),
        "router_entropy": -(probs * probs.clamp_min(1e-9).log()).sum(-1).mean().detach(),
    }


class GffMoeDecoderLayer(GradientCheckpointingLayer):
    """Post-LayerNorm decoder layer: causal ALiBi self-attention, cross-attention, MoE feed-forward."""

    def __init__(self, config: GffMoeConfig, layer_idx: int):
        super().__init__()
        self.self_attn = GffMoeAttention(config, layer_idx, is_causal=True)
        self.self_attn_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.cross_attn = GffMoeAttention(config, layer_idx, use_alibi=False)
        self.cross_attn_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.moe = GffMoeSparseMoeBlock(config)
        self.moe_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        hidden_states: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
        past_length: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        attended = self.self_attn(
            hidden_states, key_padding_mask=attention_mask, cache=cache, past_length=past_length
        )
        hidden_states = self.self_attn_norm(hidden_states + self.dropout(attended))
        attended = self.cross_attn(
            hidden_states, key_value_states=memory, key_padding_mask=memory_mask, cache=cache
        )
        hidden_states = self.cross_attn_norm(hidden_states + self.dropout(attended))
        moe_output, router_logits, top_k_index = self.moe(hidden_states)
        return self.moe_norm(hidden_states + self.dropout(moe_output)), router_logits, top_k_index


class GffMoeDecoder(nn.Module):
    def __init__(self, config: GffMoeConfig):
        super().__init__()
        self.embedding_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.layers = nn.ModuleList(GffMoeDecoderLayer(config, i) for i in range(config.decoder_layers))

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
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        router_logits, top_k_indices = [], []
        for layer in self.layers:
            hidden_states, logits, top_k_index = layer(
                hidden_states, memory, memory_mask, attention_mask, cache=cache, past_length=past_length
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
    expert load, [decoder_layers] mean router entropy) for logging."""

    aux_loss: torch.Tensor | None = None
    z_loss: torch.Tensor | None = None
    expert_load: torch.Tensor | None = None
    router_entropy: torch.Tensor | None = None
    router_logits: tuple[torch.Tensor, ...] | None = None


class GffMoePreTrainedModel(PreTrainedModel):
    config: GffMoeConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["GffMoeEncoderLayer", "GffMoeDecoderLayer"]
    _supports_sdpa = True
    _supports_flash_attn = False  # ALiBi is an additive bias
    _supports_flex_attn = False

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
        elif isinstance(module, GffMoeAttention) and module.alibi_slopes is not None:
            init.copy_(module.alibi_slopes, alibi_slopes(module.num_heads))
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
        self.post_init()

    @property
    def uses_pointers(self) -> bool:
        return self.config.coordinate_scheme == "pointer"

    def get_input_embeddings(self) -> nn.Embedding:
        return self.shared

    def set_input_embeddings(self, new_embeddings: nn.Embedding):
        self.shared = new_embeddings
        self.encoder.embed_tokens = new_embeddings

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

    def pointer_logits(
        self, decoder_states: torch.Tensor, memory: torch.Tensor, pointable: torch.Tensor
    ) -> torch.Tensor:
        """Scaled dot product of each decoder state with each memory vector; -inf where nothing can be pointed to."""
        scores = self.pointer_query(decoder_states) @ self.pointer_key(memory).transpose(1, 2)
        scores = scores * self.config.hidden_size**-0.5
        return scores.masked_fill(~pointable[:, None, :], float("-inf"))

    def _shift_right(self, labels: torch.LongTensor) -> torch.LongTensor:
        shifted = labels.new_full(labels.shape, self.config.pad_token_id)
        shifted[:, 1:] = labels[:, :-1]
        shifted[:, 0] = self.config.decoder_start_token_id
        return shifted.masked_fill(shifted == -100, self.config.pad_token_id)

    def prepare_decoder_input_ids_from_labels(self, labels: torch.LongTensor) -> torch.LongTensor:
        return self._shift_right(labels)

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
        use_cache: bool | None = None,
        output_router_logits: bool = False,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> GffMoeSeq2SeqLMOutput:
        r"""
        token_offsets (`torch.LongTensor` of shape `(batch_size, source_length, 2)`):
            Half-open base-pair span of each source token inside the window; (0, 0) for special tokens.
        labels (`torch.LongTensor` of shape `(batch_size, target_length)`, *optional*):
            Target ids: vocabulary ids, pointer ids `vocab_size + i` (pointer scheme), -100 to ignore.
        cache / past_key_values (`EncoderDecoderCache`, *optional*):
            The decoding cache; `generate()` passes it as `cache`.
        """
        if token_offsets is None:
            raise ValueError(
                "GffMoe needs `token_offsets` [batch, source_length, 2] (see tokenization.encode_source)"
            )
        cache = cache if cache is not None else past_key_values
        use_cache = use_cache if use_cache is not None else self.config.use_cache
        output_hidden_states = bool(output_hidden_states)
        if self.training and self.is_activation_checkpointing:
            use_cache = False  # a replayed layer would write the cache twice

        if encoder_outputs is None:
            encoder_outputs = self.encoder(
                input_ids, attention_mask, output_hidden_states=output_hidden_states
            )
        elif not isinstance(encoder_outputs, BaseModelOutput):
            encoder_outputs = BaseModelOutput(last_hidden_state=encoder_outputs[0])
        encoder_states = encoder_outputs.last_hidden_state
        if attention_mask is None:
            attention_mask = torch.ones(
                encoder_states.shape[:2], dtype=torch.long, device=encoder_states.device
            )
        memory = self.encoder_memory(encoder_states, token_offsets)

        if labels is not None:
            self._check_labels(labels, memory.shape[1])
            if decoder_input_ids is None:
                decoder_input_ids = self._shift_right(labels)
        if use_cache and cache is None:
            cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        if not use_cache:
            cache = None

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
            pointable = attention_mask.bool() & (token_offsets[..., 1] > token_offsets[..., 0])
            logits = torch.cat(
                [logits, self.pointer_logits(decoder_states, memory, pointable).to(logits.dtype)], -1
            )

        token_mask = labels.ne(-100) if labels is not None else decoder_attention_mask
        stats = [
            router_losses(layer_logits, layer_top_k, self.config.num_experts, token_mask)
            for layer_logits, layer_top_k in zip(router_logits, top_k_indices, strict=True)
        ]
        aux_loss = torch.stack([s["aux_loss"] for s in stats]).mean()
        z_loss = torch.stack([s["z_loss"] for s in stats]).mean()
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100)
            loss = (
                loss + self.config.router_aux_loss_coef * aux_loss + self.config.router_z_loss_coef * z_loss
            )

        return GffMoeSeq2SeqLMOutput(
            loss=loss,
            logits=logits,
            cache=cache,
            decoder_hidden_states=decoder_outputs.hidden_states,
            encoder_last_hidden_state=encoder_states,
            encoder_hidden_states=encoder_outputs.hidden_states,
            aux_loss=aux_loss,
            z_loss=z_loss,
            expert_load=torch.stack([s["expert_load"] for s in stats]),
            router_entropy=torch.stack([s["router_entropy"] for s in stats]),
            router_logits=tuple(router_logits) if output_router_logits else None,
        )

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
