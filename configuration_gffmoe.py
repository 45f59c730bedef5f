"""GFF-MoE configuration: a DNABERT-2 encoder and a Mixture-of-Experts decoder that writes GFF3 as tokens."""

from transformers import PreTrainedConfig

COORDINATE_SCHEMES = ("pointer", "number")
# Both auto model classes load the generating model: a base model without the head could not generate.
AUTO_MAP = {
    "AutoConfig": "configuration_gffmoe.GffMoeConfig",
    "AutoModel": "modeling_gffmoe.GffMoeForConditionalGeneration",
    "AutoModelForSeq2SeqLM": "modeling_gffmoe.GffMoeForConditionalGeneration",
}


class GffMoeConfig(PreTrainedConfig):
    r"""
    Configuration of [`GffMoeForConditionalGeneration`].

    The encoder fields keep DNABERT-2's names (`num_hidden_layers` is the encoder depth), so a DNABERT-2
    `config.json` maps onto them one to one. The decoder shares the width, heads and vocabulary.

    Args:
        vocab_size (`int`): size of the (possibly extended) tokenizer vocabulary, `len(tokenizer)`.
        hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, layer_norm_eps,
        hidden_dropout_prob, attention_probs_dropout_prob, type_vocab_size, alibi_starting_size:
            DNABERT-2 encoder fields (post-LayerNorm BERT, ALiBi, GEGLU).
        decoder_layers (`int`): decoder depth.
        num_experts (`int`), moe_top_k (`int`): experts per decoder feed-forward and experts used per token.
        expert_intermediate_size (`int`, *optional*): inner width of each expert (GEGLU); defaults to
            `intermediate_size` so experts can be upcycled from DNABERT-2's feed-forward.
        router_aux_loss_coef (`float`), router_z_loss_coef (`float`): weights of the Switch load-balancing loss
            and of the router z-loss in the total loss.
        coordinate_scheme (`str`): `"pointer"` (logits over the vocabulary plus one pointer slot per source
            token) or `"number"` (plain vocabulary).
        max_offset (`int`): number of in-token offset tokens `<o k>` the pointer scheme uses.
        offset_frequencies (`int`): Fourier frequencies per base-pair offset in the encoder memory.
        attention_block_size (`int`): queries per attention block on long inputs, which bounds attention
            memory to `block x keys` per head instead of `keys x keys`. Not named `attention_chunk_size`:
            transformers reads that as Llama-4 chunked attention and gives `generate()` a sliding-window cache.
        track_loss_weight (`float`): weight of the per-base gene-structure track loss (the encoder's track head
            classifies every base of the window on both strands, see `tokenization.track`); 0 builds no head.
        track_conv_channels (`int`): width of the track head's convolutions over the bases (four dilated layers,
            +-160 bp: splice sites, codons and their statistics, which BPE token states do not spell out); 0:
            none, each base read from its token's state alone.
        initializer_range (`float`): std of the normal initialiser of fresh weights.
        training_window_bp (`int`, *optional*): the window length the model was trained on, in bp: nine in ten
            training windows at most this long (train.py records it). Annotation tiles genomes into windows of
            this length unless told otherwise: a model read in windows three times longer than it learned on
            scores half as well.
        training_taxa (`list[str]`, *optional*): the taxa (dataset configs) it was trained on (train.py records
            them); annotation takes the taxon's genetic code and modes from a model trained on one.
        start_weights (`dict[str, float]`, *optional*): the start scorer train.py fits on the prokaryote
            training genes (feature name -> weight, `annotation.starts`): which start codon of its ORF a
            bacterial gene takes. None: the longest start.
    """

    model_type = "gffmoe"
    keys_to_ignore_at_inference = ["cache"]

    def __init__(
        self,
        vocab_size: int = 4096,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        intermediate_size: int = 3072,
        hidden_dropout_prob: float = 0.1,
        attention_probs_dropout_prob: float = 0.0,
        type_vocab_size: int = 2,
        layer_norm_eps: float = 1e-12,
        alibi_starting_size: int = 512,
        decoder_layers: int = 4,
        num_experts: int = 8,
        moe_top_k: int = 2,
        expert_intermediate_size: int | None = None,
        router_aux_loss_coef: float = 0.01,
        router_z_loss_coef: float = 0.001,
        coordinate_scheme: str = "pointer",
        max_offset: int = 64,
        offset_frequencies: int = 16,
        attention_block_size: int = 1024,
        track_loss_weight: float = 0.0,
        track_conv_channels: int = 0,
        initializer_range: float = 0.02,
        training_window_bp: int | None = None,
        training_taxa: list[str] | None = None,
        start_weights: dict[str, float] | None = None,
        use_cache: bool = True,
        pad_token_id: int | None = 3,
        bos_token_id: int | None = 1,
        eos_token_id: int | None = 2,
        decoder_start_token_id: int | None = 1,
        tie_word_embeddings: bool = True,
        is_encoder_decoder: bool = True,
        **kwargs,
    ):
        if coordinate_scheme not in COORDINATE_SCHEMES:
            raise ValueError(
                f"coordinate_scheme must be one of {COORDINATE_SCHEMES}, got {coordinate_scheme!r}"
            )
        if not 1 <= moe_top_k <= num_experts:
            raise ValueError(f"moe_top_k must be between 1 and num_experts={num_experts}, got {moe_top_k}")
        if track_loss_weight < 0:
            raise ValueError(f"track_loss_weight must be >= 0, got {track_loss_weight}")
        if track_conv_channels < 0:
            raise ValueError(f"track_conv_channels must be >= 0, got {track_conv_channels}")
        if hidden_size % num_attention_heads:
            raise ValueError(
                f"hidden_size {hidden_size} is not a multiple of num_attention_heads {num_attention_heads}"
            )
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.type_vocab_size = type_vocab_size
        self.layer_norm_eps = layer_norm_eps
        self.alibi_starting_size = alibi_starting_size
        self.decoder_layers = decoder_layers
        self.num_experts = num_experts
        self.moe_top_k = moe_top_k
        self.expert_intermediate_size = expert_intermediate_size or intermediate_size
        self.router_aux_loss_coef = router_aux_loss_coef
        self.router_z_loss_coef = router_z_loss_coef
        self.coordinate_scheme = coordinate_scheme
        self.max_offset = max_offset
        self.offset_frequencies = offset_frequencies
        # the field's old name, in configs saved before the rename
        self.attention_block_size = kwargs.pop("attention_chunk_size", attention_block_size)
        self.track_loss_weight = track_loss_weight
        self.track_conv_channels = track_conv_channels
        self.initializer_range = initializer_range
        self.training_window_bp = training_window_bp
        self.training_taxa = training_taxa
        self.start_weights = start_weights
        self.use_cache = use_cache
        self.pad_token_id = pad_token_id
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id
        self.decoder_start_token_id = decoder_start_token_id
        self.tie_word_embeddings = tie_word_embeddings
        kwargs.setdefault("auto_map", dict(AUTO_MAP))
        super().__init__(is_encoder_decoder=is_encoder_decoder, **kwargs)


GffMoeConfig.register_for_auto_class()

__all__ = ["GffMoeConfig"]
