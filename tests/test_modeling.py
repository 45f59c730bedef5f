"""GffMoe model: DNABERT-2 encoder, MoE router, pointer logits, generation, checkpointing, PEFT."""

from __future__ import annotations

import copy
import math
from unittest.mock import patch

import pytest
import torch
import torch.nn.functional as F
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from configuration_gffmoe import GffMoeConfig
from modeling_gffmoe import GffMoeForConditionalGeneration, GffMoeSparseMoeBlock, alibi_slopes, router_losses
from tests.fixtures.genomes import random_dna
from tests.fixtures.training import TINY_VOCAB, tiny_checkpoint, tiny_config
from tokenization.tokenizer import encode_source

__all__ = ["tiny_checkpoint"]  # fixtures used here

torch.set_num_threads(1)
VOCAB = TINY_VOCAB


def tiny_model(seed: int = 0, **overrides) -> GffMoeForConditionalGeneration:
    torch.manual_seed(seed)
    model = GffMoeForConditionalGeneration(tiny_config(**overrides)).eval()
    with torch.no_grad():  # LayerNorms away from (1, 0) so the reference check sees them
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
    return model


def source_batch(batch: int = 2, length: int = 12, seed: int = 0) -> dict[str, torch.Tensor]:
    """[CLS] dna... [SEP] [PAD]...: tokens of 1-6 bp, the second sequence padded by 3."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, VOCAB, (batch, length), generator=generator)
    attention_mask = torch.ones(batch, length, dtype=torch.long)
    token_offsets = torch.zeros(batch, length, 2, dtype=torch.long)
    for b in range(batch):
        real = length - 3 * b
        attention_mask[b, real:] = 0
        input_ids[b, 0], input_ids[b, real - 1], input_ids[b, real:] = 1, 2, 3
        ends = torch.randint(1, 7, (real - 2,), generator=generator).cumsum(0)
        token_offsets[b, 1 : real - 1, 0] = ends - (
            ends - torch.cat([torch.zeros(1, dtype=torch.long), ends[:-1]])
        )
        token_offsets[b, 1 : real - 1, 1] = ends
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_offsets": token_offsets}


# ---------------------------------------------------------------- encoder = DNABERT-2


def reference_dnabert_encoder(model, input_ids, attention_mask):
    """DNABERT-2 written out from its description: word + token-type embeddings, LayerNorm; per layer
    post-LN attention with q.k/sqrt(d) - slope_h*|i-j| (keys masked by padding), then post-LN GEGLU with exact
    GELU on the first half. Weights read from the state dict, nothing else from the model."""
    sd = {k: v.double() for k, v in model.state_dict().items()}
    config = model.config
    heads, hidden = config.num_attention_heads, config.hidden_size
    head_dim = hidden // heads
    slopes = torch.tensor([2.0 ** (-8 * (i + 1) / heads) for i in range(heads)], dtype=torch.double)

    def layer_norm(x, prefix):
        return F.layer_norm(x, (hidden,), sd[f"{prefix}.weight"], sd[f"{prefix}.bias"], config.layer_norm_eps)

    def linear(x, prefix, bias=True):
        return x @ sd[f"{prefix}.weight"].T + (sd[f"{prefix}.bias"] if bias else 0)

    x = sd["shared.weight"][input_ids] + sd["encoder.token_type_embeddings.weight"][0]
    x = layer_norm(x, "encoder.embedding_norm")
    positions = torch.arange(input_ids.shape[1])
    distance = (positions[None, :] - positions[:, None]).abs().double()
    mask = torch.where(attention_mask.bool(), 0.0, -1e30).double()[:, None, None, :]
    for i in range(config.num_hidden_layers):
        p = f"encoder.layers.{i}"

        def split(t):
            return t.view(t.shape[0], t.shape[1], heads, head_dim).transpose(1, 2)

        q, k, v = (split(linear(x, f"{p}.self_attn.{n}_proj")) for n in "qkv")
        scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim) - slopes[:, None, None] * distance + mask
        attended = (scores.softmax(-1) @ v).transpose(1, 2).reshape(x.shape)
        x = layer_norm(x + linear(attended, f"{p}.self_attn.o_proj"), f"{p}.self_attn_norm")
        gated = linear(x, f"{p}.mlp.gate_up_proj", bias=False)
        inner = gated.shape[-1] // 2
        geglu = F.gelu(gated[..., :inner]) * gated[..., inner:]
        x = layer_norm(x + linear(geglu, f"{p}.mlp.down_proj"), f"{p}.mlp_norm")
    return x


def test_encoder_matches_reference_dnabert():
    model = tiny_model()
    batch = source_batch()
    expected = reference_dnabert_encoder(model, batch["input_ids"], batch["attention_mask"])
    got = model.encoder(batch["input_ids"], batch["attention_mask"]).last_hidden_state
    valid = batch["attention_mask"].bool()
    torch.testing.assert_close(got[valid].double(), expected[valid], atol=1e-5, rtol=1e-5)


def test_alibi_slopes_non_power_of_two_rule():
    expected = [2.0**-i for i in range(1, 9)] + [2**-0.5, 2**-1.5, 2**-2.5, 2**-3.5]
    torch.testing.assert_close(alibi_slopes(12), torch.tensor(expected))


def with_block_size(model, block_size: int = 8):
    """The same weights with attention in query blocks of `block_size` (the model's own default is 1024)."""
    blocked = copy.deepcopy(model)
    blocked.config.attention_block_size = block_size  # the configs are shared by the submodules
    return blocked


def test_query_blocked_attention_equals_one_block_on_long_sources():
    """A padded source of 101 tokens in blocks of 8 (a partial last block in the encoder) and 20 target tokens
    (decoder self-attention blocked too): encoder states, cross-attention logits and loss as in one block."""
    whole = tiny_model()
    blocked = with_block_size(whole)
    batch = source_batch(length=101)
    labels = torch.randint(5, VOCAB + 90, (2, 20))
    full, part = whole(**batch, labels=labels), blocked(**batch, labels=labels)
    valid = batch["attention_mask"].bool()
    torch.testing.assert_close(
        part.encoder_last_hidden_state[valid], full.encoder_last_hidden_state[valid], atol=1e-5, rtol=1e-4
    )
    torch.testing.assert_close(part.logits, full.logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(part.loss, full.loss, atol=1e-5, rtol=1e-5)


def test_config_reads_the_old_name_of_the_attention_block_size():
    config = GffMoeConfig.from_dict({"attention_chunk_size": 64})
    assert config.attention_block_size == 64 and getattr(config, "attention_chunk_size", None) is None


def test_padded_batch_row_equals_the_sequence_alone():
    """Row 1 (3 padding tokens) of a padded batch equals that sequence encoded alone, where nothing is padded
    and the encoder drops the padding mask altogether."""
    model = tiny_model()
    batch = source_batch()
    real = int(batch["attention_mask"][1].sum())
    in_batch = model.encoder(batch["input_ids"], batch["attention_mask"]).last_hidden_state[1, :real]
    alone_ids = batch["input_ids"][1:, :real]
    alone = model.encoder(alone_ids, torch.ones_like(alone_ids)).last_hidden_state[0]
    torch.testing.assert_close(alone, in_batch, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- router and experts


def moe_block(num_experts=6, top_k=2, implementation="grouped_mm"):
    torch.manual_seed(0)
    config = tiny_config(num_experts=num_experts, moe_top_k=top_k)
    config._experts_implementation = implementation
    block = GffMoeSparseMoeBlock(config)
    with torch.no_grad():
        for param in block.parameters():
            param.normal_(0, 0.3)
    return block


@pytest.mark.parametrize("top_k", [1, 2, 3])
def test_router_sends_each_token_to_exactly_top_k_experts(top_k):
    block = moe_block(top_k=top_k)
    tokens = torch.randn(50, 32)
    output, router_logits, top_k_index = block(tokens)
    assert top_k_index.shape == (50, top_k)
    assert all(len(set(row.tolist())) == top_k for row in top_k_index)
    expected_experts = router_logits.softmax(-1).topk(top_k, dim=-1).indices
    assert torch.equal(top_k_index.sort(-1).values, expected_experts.sort(-1).values)
    # the output is exactly the renormalised mixture of the chosen experts: no token dropped
    experts = block.experts
    probs = router_logits.softmax(-1)
    expected = torch.zeros_like(tokens)
    for t in range(tokens.shape[0]):
        chosen = top_k_index[t]
        weights = probs[t, chosen] / probs[t, chosen].sum()
        for e, w in zip(chosen.tolist(), weights, strict=True):
            gate, up = (experts.gate_up_proj[e] @ tokens[t] + experts.gate_up_proj_bias[e]).chunk(2)
            expected[t] += w * (experts.down_proj[e] @ (F.gelu(gate) * up) + experts.down_proj_bias[e])
    torch.testing.assert_close(output, expected, atol=1e-5, rtol=1e-4)


def test_grouped_dispatch_equals_eager_loop():
    tokens = torch.randn(64, 32)
    grouped = moe_block(implementation="grouped_mm")
    eager = moe_block(implementation="eager")
    torch.testing.assert_close(grouped(tokens)[0], eager(tokens)[0], atol=1e-5, rtol=1e-4)


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="the default on a GPU machine is transformers' grouped_mm"
)
def test_experts_default_to_the_eager_loop_without_a_gpu_unless_asked(tmp_path):
    assert tiny_model().config._experts_implementation == "eager"
    assert tiny_model(experts_implementation="grouped_mm").config._experts_implementation == "grouped_mm"
    tiny_model().save_pretrained(tmp_path)  # a choice of this machine: not written into config.json
    assert "experts_implementation" not in (tmp_path / "config.json").read_text()


def test_eager_dispatch_gradients_equal_grouped():
    tokens = torch.randn(64, 32)
    grads = []
    for implementation in ("grouped_mm", "eager"):
        block = moe_block(num_experts=8, implementation=implementation)
        block(tokens)[0].square().sum().backward()
        grads.append({name: param.grad for name, param in block.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_router_losses_of_stacked_layers_equal_each_layer():
    layers, tokens, experts = 3, 20, 5
    logits = torch.randn(layers, tokens, experts)
    top_k = logits.topk(2, dim=-1).indices
    mask = torch.rand(tokens) > 0.3
    stacked = router_losses(logits, top_k, experts, mask)
    for layer in range(layers):
        single = router_losses(logits[layer], top_k[layer], experts, mask)
        for name, value in single.items():
            torch.testing.assert_close(stacked[name][layer], value, msg=name)


def test_aux_loss_is_minimal_at_equal_load():
    experts, tokens = 4, 400
    uniform_logits = torch.zeros(tokens, experts)
    balanced = torch.stack([torch.arange(tokens) % experts, (torch.arange(tokens) + 1) % experts], -1)
    equal = router_losses(uniform_logits, balanced, experts)
    assert equal["aux_loss"].item() == pytest.approx(1.0)
    torch.testing.assert_close(equal["expert_load"], torch.full((experts,), 0.25))
    assert equal["router_entropy"].item() == pytest.approx(math.log(experts))
    skewed_logits = torch.zeros(tokens, experts)
    skewed_logits[:, :2] = 5.0
    skewed = router_losses(skewed_logits, torch.tensor([[0, 1]]).expand(tokens, 2), experts)
    assert skewed["aux_loss"] > equal["aux_loss"] + 0.5
    assert skewed["z_loss"] > equal["z_loss"]
    # masked (padding) tokens do not count
    masked = router_losses(
        skewed_logits, torch.tensor([[0, 1]]).expand(tokens, 2), experts, torch.zeros(tokens)
    )
    assert torch.isnan(masked["aux_loss"]) or masked["expert_load"].sum() == 0


def test_gradients_reach_every_selected_expert():
    block = moe_block(num_experts=8, top_k=2)
    tokens = torch.randn(6, 32)  # few tokens, so some experts stay unselected
    output, _, top_k_index = block(tokens)
    output.square().sum().backward()
    selected = set(top_k_index.flatten().tolist())
    for e in range(8):
        has_grad = block.experts.gate_up_proj.grad[e].abs().sum() > 0
        assert has_grad == (e in selected), e
        assert (block.experts.down_proj.grad[e].abs().sum() > 0) == (e in selected)
    assert block.router.weight.grad.abs().sum() > 0


# ---------------------------------------------------------------- pointer logits and loss


def test_pointer_logits_shape_and_masking():
    model = tiny_model()
    batch = source_batch()
    decoder_input_ids = torch.randint(5, VOCAB, (2, 7))
    output = model(**batch, decoder_input_ids=decoder_input_ids, output_hidden_states=True)
    logits = output.logits
    assert logits.shape == (2, 7, VOCAB + 12)
    pointer = logits[..., VOCAB:]
    offsets = batch["token_offsets"]
    pointable = batch["attention_mask"].bool() & (offsets[..., 1] > offsets[..., 0])
    assert torch.isneginf(pointer[~pointable[:, None, :].expand_as(pointer)]).all()  # padding and specials
    assert torch.isfinite(pointer[pointable[:, None, :].expand_as(pointer)]).all()
    assert torch.isfinite(logits[..., :VOCAB]).all()
    # A pointable slot scores the decoder state's pointer query against that source token's pointer key
    memory = model.encoder_memory(output.encoder_last_hidden_state, offsets)
    query = model.pointer_query(output.decoder_hidden_states[-1])
    expected = query @ model.pointer_key(memory).transpose(1, 2) / math.sqrt(model.config.hidden_size)
    slots = pointable[:, None, :].expand_as(pointer)
    torch.testing.assert_close(pointer[slots], expected[slots], atol=1e-5, rtol=1e-5)


def test_hint_tokens_after_the_dna_can_never_be_pointed_to():
    """`[CLS] DNA [SEP] [HIT] hints [SEP]`: hint tokens are attended to but have the empty span (0, 0)."""
    model = tiny_model()
    batch = source_batch(batch=1, length=16)
    batch["token_offsets"][0, 11:] = 0  # [SEP] at 11, then the hint part: attended, not pointable
    batch["input_ids"][0, 11:] = torch.tensor([2, 30, 31, 32, 2])
    decoder_input_ids = torch.tensor([[1, 7, 8, 9, 10]])
    logits = model(**batch, decoder_input_ids=decoder_input_ids).logits
    pointer = logits[0, :, VOCAB:]
    assert torch.isneginf(pointer[:, 11:]).all() and torch.isneginf(pointer[:, 0]).all()
    assert torch.isfinite(pointer[:, 1:11]).all()
    # The hints are read: another hint token changes what the decoder predicts.
    batch["input_ids"][0, 12] = 33
    other = model(**batch, decoder_input_ids=decoder_input_ids).logits
    assert not torch.allclose(other[..., :VOCAB], logits[..., :VOCAB])


def test_pointer_input_is_the_pointed_memory_vector():
    """Decoder input id V+i embeds as the projected memory vector i; vocabulary ids as their embedding row."""
    model = tiny_model()
    batch = source_batch()
    ids = torch.tensor([[1, 7, VOCAB + 4, 9], [1, 7, VOCAB + 5, 9]])
    memory = model.encoder_memory(
        model.encoder(batch["input_ids"], batch["attention_mask"])[0], batch["token_offsets"]
    )
    embedded = model.embed_decoder_inputs(ids, memory)
    torch.testing.assert_close(embedded[0, 2], model.pointer_embedding(memory[0, 4]))
    torch.testing.assert_close(embedded[1, 2], model.pointer_embedding(memory[1, 5]))
    torch.testing.assert_close(embedded[:, [0, 1, 3]], model.shared(ids[:, [0, 1, 3]]))
    # the memory carries the base-pair offsets: moving token 4 changes what pointer V+4 embeds as
    moved = batch["token_offsets"].clone()
    moved[:, 4] += 1000
    moved_memory = model.encoder_memory(model.encoder(batch["input_ids"], batch["attention_mask"])[0], moved)
    assert not torch.allclose(model.embed_decoder_inputs(ids, moved_memory)[0, 2], embedded[0, 2])
    torch.testing.assert_close(moved_memory[:, 5], memory[:, 5])


def test_loss_combines_cross_entropy_and_router_losses():
    model = tiny_model(router_aux_loss_coef=0.5, router_z_loss_coef=0.1)
    batch = source_batch()
    labels = torch.tensor([[9, VOCAB + 3, 11, -100], [VOCAB + 1, 12, 2, 2]])
    out = model(**batch, labels=labels)
    ce = F.cross_entropy(out.logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
    torch.testing.assert_close(out.loss, ce + 0.5 * out.aux_loss + 0.1 * out.z_loss)
    assert out.expert_load.shape == (2, 4) and out.router_entropy.shape == (2,)
    torch.testing.assert_close(out.expert_load.sum(-1), torch.ones(2))
    with pytest.raises(ValueError, match="outside"):
        model(**batch, labels=torch.tensor([[VOCAB + 12, 2], [2, 2]]))  # only 12 source positions


def test_router_statistics_only_with_labels_or_when_asked_for():
    """A generation step needs no router loss: it is computed for a training forward or on request."""
    model = tiny_model()
    batch = source_batch()
    with patch("modeling_gffmoe.router_losses", wraps=router_losses) as counted:
        model.generate(**batch, max_new_tokens=4, eos_token_id=None)
        assert counted.call_count == 0
        plain = model(**batch, decoder_input_ids=torch.ones(2, 1).long())
        assert plain.aux_loss is None and plain.expert_load is None
        asked = model(**batch, decoder_input_ids=torch.ones(2, 1).long(), output_router_logits=True)
        assert counted.call_count == 1 and asked.expert_load.shape == (2, 4)


def test_return_dict_and_hidden_states_follow_the_config_unless_given():
    model = tiny_model(output_hidden_states=True)
    batch = source_batch()
    labels = torch.tensor([[9, VOCAB + 3, 11, -100], [VOCAB + 1, 12, 2, 2]])
    out = model(**batch, labels=labels)
    assert (
        len(out.encoder_hidden_states) == 3 and len(out.decoder_hidden_states) == 3
    )  # embeddings + 2 layers
    assert model(**batch, labels=labels, output_hidden_states=False).decoder_hidden_states is None
    model.config.return_dict = False
    as_tuple = model(**batch, labels=labels)
    assert isinstance(as_tuple, tuple)
    torch.testing.assert_close(as_tuple[0], out.loss)  # the loss first, as transformers' tuples
    assert isinstance(model.encoder(batch["input_ids"], batch["attention_mask"]), tuple)
    assert model(**batch, labels=labels, return_dict=True).loss is not None


# ---------------------------------------------------------------- per-base track head


@pytest.mark.parametrize("channels", [0, 8])
def test_track_head_labels_every_covered_base_once_and_adds_its_weighted_loss(channels):
    model = tiny_model(track_loss_weight=0.5, track_conv_channels=channels)
    batch = source_batch()
    covered = batch["token_offsets"][..., 1].max(1).values  # bases each window's tokens cover
    generator = torch.Generator().manual_seed(1)
    shape = (2, int(covered.max()))
    track_labels = torch.stack([torch.randint(0, n, shape, generator=generator) for n in (6, 7, 6, 7)], -1)
    track_labels[1, int(covered[1]) :] = -100  # the shorter window's padding
    labels = torch.tensor([[9, VOCAB + 3, 11, -100], [VOCAB + 1, 12, 2, 2]])
    out = model(**batch, labels=labels, track_labels=track_labels)

    logits, row, position = model.track(
        out.encoder_last_hidden_state, batch["input_ids"], batch["token_offsets"]
    )
    for b in range(2):  # each base of a window exactly once, in order
        assert position[row == b].tolist() == list(range(int(covered[b])))
    assert out.track_logits.shape == (2, track_labels.shape[1], 26)
    expected = []
    for column, (first, n) in enumerate([(0, 6), (6, 7), (13, 6), (19, 7)]):
        part = out.track_logits[..., first : first + n].flatten(0, 1)
        expected.append(F.cross_entropy(part, track_labels[..., column].flatten(), ignore_index=-100))
    torch.testing.assert_close(out.track_loss, torch.stack(expected).mean())
    plain = model(**batch, labels=labels)  # no track labels: the decoder's loss alone
    torch.testing.assert_close(out.loss, plain.loss + 0.5 * out.track_loss)
    out.loss.backward()
    assert model.track_head.by_place_and_base.weight.grad.abs().sum() > 0
    if channels:  # the convolutions over the bases learn too
        assert all(conv.weight.grad.abs().sum() > 0 for conv in model.track_head.convs)


def test_track_convolutions_read_a_window_the_same_alone_and_in_a_batch():
    # The second window of source_batch is shorter: its last bases must not see the first window's length.
    model = tiny_model(track_loss_weight=1.0, track_conv_channels=8)
    batch = source_batch()
    with torch.no_grad():
        states = model.get_encoder()(**batch).last_hidden_state
        together = model.track_logits(states, batch["input_ids"], batch["token_offsets"])
        real = int(batch["attention_mask"][1].sum())
        alone_inputs = {key: value[1:, :real] for key, value in batch.items()}
        alone = model.track_logits(
            model.get_encoder()(**alone_inputs).last_hidden_state,
            alone_inputs["input_ids"],
            alone_inputs["token_offsets"],
        )
    # equal but for float noise (the encoder pads the batch)
    torch.testing.assert_close(together[1, : alone.shape[1]], alone[0], atol=1e-4, rtol=1e-4)


def test_track_groups_match_the_track_classes():
    from modeling_gffmoe import TRACK_GROUPS
    from tokenization.track import BOUNDARY, REGION, TRACK_COLUMNS

    assert (len(REGION), len(BOUNDARY)) * 2 == TRACK_GROUPS and len(TRACK_COLUMNS) == len(TRACK_GROUPS)


def test_no_track_head_without_a_track_weight():
    model = tiny_model()
    assert not hasattr(model, "track_head")
    out = model(
        **source_batch(), labels=torch.tensor([[9, 2], [9, 2]]), track_labels=torch.zeros(2, 40, 4).long()
    )
    assert out.track_loss is None and out.track_logits is None


def test_number_scheme_has_no_pointer_slots():
    model = tiny_model(coordinate_scheme="number")
    out = model(**source_batch(), labels=torch.randint(5, VOCAB, (2, 5)))
    assert out.logits.shape == (2, 5, VOCAB)
    with pytest.raises(ValueError, match="outside"):
        model(**source_batch(), labels=torch.tensor([[VOCAB, 2], [2, 2]]))


def test_token_offsets_are_required():
    batch = source_batch()
    del batch["token_offsets"]
    with pytest.raises(ValueError, match="token_offsets"):
        tiny_model()(**batch, decoder_input_ids=torch.ones(2, 1, dtype=torch.long))


def test_the_tokenizer_output_alone_drives_forward_and_generate(tiny_checkpoint):
    """`model(**tokenizer(dna, return_tensors="pt"), labels=...)` and `model.generate(**tokenizer(...))`:
    the spans are derived from the spelling the model stores, exactly as passing them explicitly."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_checkpoint, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    dna = [random_dna(300, seed=1), random_dna(120, seed=2) + "N" * 70 + random_dna(50, seed=3)]
    batch = tokenizer(dna, return_tensors="pt", padding=True)
    sources = [encode_source(tokenizer, d)["token_offsets"] for d in dna]
    explicit = torch.zeros(*batch["input_ids"].shape, 2, dtype=torch.long)
    for row, spans in enumerate(sources):
        explicit[row, : len(spans)] = torch.tensor(spans)
    labels = torch.randint(5, len(tokenizer), (2, 6), generator=torch.Generator().manual_seed(0))
    derived, given = model(**batch, labels=labels), model(**batch, token_offsets=explicit, labels=labels)
    assert torch.equal(derived.logits, given.logits) and torch.equal(derived.loss, given.loss)
    options = {"max_new_tokens": 8, "num_beams": 2, "do_sample": False}
    assert torch.equal(
        model.generate(**batch, **options), model.generate(**batch, token_offsets=explicit, **options)
    )


# ---------------------------------------------------------------- generation


TARGET = [
    [9, VOCAB + 3, 5, 11, VOCAB + 6, 6, 30, 9, VOCAB + 2, 2],
    [14, VOCAB + 1, 7, 22, VOCAB + 7, 3, 8, 2, 2, 2],
]


@pytest.fixture(scope="module")
def trained_model():
    """A tiny model that memorised mixed vocabulary/pointer targets, so greedy and beam outputs vary per step
    (an untrained model repeats one token, which would make cached == uncached a weak check)."""
    return memorised(tiny_model(seed=3, initializer_range=0.05), source_batch(), torch.tensor(TARGET))


def memorised(model, batch, labels, steps: int = 60):
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
    return model.eval()


@pytest.mark.parametrize("beams", [1, 3])
def test_cached_generation_equals_uncached(trained_model, beams):
    batch = source_batch()
    kwargs = dict(**batch, max_new_tokens=12, num_beams=beams, do_sample=False, eos_token_id=None)
    cached = trained_model.generate(**kwargs, use_cache=True)
    uncached = trained_model.generate(**kwargs, use_cache=False)
    assert torch.equal(cached, uncached)
    assert cached.shape == (2, 13)
    assert len(set(cached[0, 1:].tolist())) > 4  # not a constant sequence
    assert (cached >= VOCAB).sum() >= 4  # pointers were generated and fed back
    assert cached[0, 1:9].tolist() == TARGET[0][:8]  # it decodes what it learned


def test_beam_search_leaves_the_shared_cross_attention_cache_alone(trained_model):
    """The beams of one source share its cross-attention keys and values, so beam search reorders only the
    self-attention cache: the same beams and scores as reordering both, without copying the source's cache."""
    kwargs = dict(**source_batch(), max_new_tokens=12, num_beams=3, do_sample=False, eos_token_id=None)
    kwargs |= dict(return_dict_in_generate=True, output_scores=True)

    def reorder_both(cache, beam_idx):
        cache.reorder_cache(beam_idx)
        return cache

    with patch.object(type(trained_model), "_reorder_cache", staticmethod(reorder_both)):
        expected = trained_model.generate(**kwargs)
    reorder_one = DynamicCache.reorder_cache
    reordered = []  # the layer caches beam search reorders
    with patch.object(
        DynamicCache,
        "reorder_cache",
        autospec=True,
        side_effect=lambda c, i: reordered.append(c) or reorder_one(c, i),
    ):
        got = trained_model.generate(**kwargs)
    assert reordered and all(c is got.cache.self_attention_cache for c in reordered)
    assert torch.equal(got.sequences, expected.sequences)
    for got_scores, expected_scores in zip(got.scores, expected.scores, strict=True):
        torch.testing.assert_close(got_scores, expected_scores)


@pytest.fixture(scope="module")
def long_source_model():
    """A tiny model that memorised 24-token targets pointing anywhere in a 101-token source (see trained_model)."""
    batch = source_batch(length=101)
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(5, VOCAB, (2, 24), generator=generator)
    labels[:, 1::3] = VOCAB + torch.randint(1, 95, (2, 8), generator=generator)
    return memorised(tiny_model(seed=3, initializer_range=0.05), batch, labels)


@pytest.mark.parametrize(("beams", "use_cache"), [(1, True), (1, False), (3, True)])
def test_generation_on_sources_longer_than_a_block_equals_one_block(long_source_model, beams, use_cache):
    """Regression: generate() builds its cache from the config, and a config field transformers reads as
    chunked attention made every cache layer a sliding window of one block, so cross-attention to a source
    longer than a block crashed and cached self-attention forgot tokens. 24 new tokens > 8 per block."""
    whole, blocked = long_source_model, with_block_size(long_source_model)
    kwargs = dict(**source_batch(length=101), max_new_tokens=24, num_beams=beams, do_sample=False)
    kwargs |= dict(eos_token_id=None, use_cache=use_cache, return_dict_in_generate=True, output_scores=True)
    expected, got = whole.generate(**kwargs), blocked.generate(**kwargs)
    assert torch.equal(got.sequences, expected.sequences)
    assert got.sequences.shape == (2, 25) and (got.sequences >= VOCAB + 8).sum() >= 4
    for got_scores, expected_scores in zip(got.scores, expected.scores, strict=True):
        torch.testing.assert_close(got_scores, expected_scores, atol=1e-4, rtol=1e-4)
    if use_cache:
        assert got.cache.cross_attention_cache.get_seq_length() == 101
        assert not any(got.cache.self_attention_cache.is_sliding)


def test_generation_carries_the_decoder_context_instead_of_recomputing_it(trained_model):
    """The memory, pointer keys and pointable mask are computed once per encoder pass, carried on the encoder
    output through every cached step, and equal what a step would recompute."""
    batch = source_batch()
    calls = []
    compute = trained_model.decoder_context
    with patch.object(
        trained_model, "decoder_context", side_effect=lambda *args: calls.append(1) or compute(*args)
    ):
        trained_model.generate(**batch, max_new_tokens=6, num_beams=2, eos_token_id=None)
    assert len(calls) == 1

    encoder_outputs = trained_model.encoder(batch["input_ids"], batch["attention_mask"])
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    step = dict(encoder_outputs=encoder_outputs, attention_mask=batch["attention_mask"], cache=cache)
    first = trained_model(
        **step, token_offsets=batch["token_offsets"], decoder_input_ids=torch.ones(2, 1).long()
    )
    recomputed = trained_model.decoder_context(
        encoder_outputs.last_hidden_state, batch["attention_mask"], batch["token_offsets"]
    )
    carried = (encoder_outputs.memory, encoder_outputs.pointer_keys, encoder_outputs.pointable)
    for carried_tensor, recomputed_tensor in zip(carried, recomputed, strict=True):
        torch.testing.assert_close(carried_tensor, recomputed_tensor)
    # the next step reads the carried context: offsets that would change the memory change nothing now
    next_ids = first.logits[:, -1].argmax(-1, keepdim=True)
    moved = batch["token_offsets"] + 1000
    carried_step = trained_model(**step, token_offsets=moved, decoder_input_ids=next_ids)
    fresh_cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    full = trained_model(
        **batch, decoder_input_ids=torch.cat([torch.ones(2, 1).long(), next_ids], 1), cache=fresh_cache
    )
    torch.testing.assert_close(carried_step.logits[:, -1], full.logits[:, -1], atol=1e-4, rtol=1e-4)


def test_sampling_generates_within_pointable_slots():
    model = tiny_model(seed=1)
    batch = source_batch()
    out = model.generate(**batch, max_new_tokens=30, do_sample=True, top_k=0, eos_token_id=None)
    pointers = out[out >= VOCAB] - VOCAB
    assert pointers.numel() > 0
    second = out[1][out[1] >= VOCAB] - VOCAB
    assert ((second >= 1) & (second < 8)).all()  # sequence 1 has DNA tokens 1..7 only (0 = [CLS], 8 = [SEP])


# ---------------------------------------------------------------- training features


def test_gradient_checkpointing_gives_same_gradients():
    batch = source_batch()
    labels = torch.tensor([[9, VOCAB + 3, 11, 2], [VOCAB + 1, 12, 2, 2]])
    grads = []
    for checkpointing in (False, True):
        model = tiny_model().train()
        if checkpointing:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model(**batch, labels=labels).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], msg=name)


def test_bfloat16_forward_runs():
    model = tiny_model().to(torch.bfloat16)
    out = model(**source_batch(), labels=torch.tensor([[9, VOCAB + 3, 2], [12, 2, 2]]))
    assert out.logits.dtype == torch.bfloat16
    assert torch.isfinite(out.loss)


def test_peft_lora_on_attention_and_experts_trains_saves_and_reloads(tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model

    model = tiny_model()
    lora = LoraConfig(
        r=4,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        target_parameters=["moe.experts.gate_up_proj", "moe.experts.down_proj"],
    )
    peft_model = get_peft_model(model, lora)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert any("experts" in n for n in trainable) and any("q_proj.lora" in n for n in trainable)
    batch = source_batch()
    labels = torch.tensor([[9, VOCAB + 3, 11, 2], [VOCAB + 1, 12, 2, 2]])
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    peft_model.train()
    before = peft_model(**batch, labels=labels).loss
    before.backward()
    optimizer.step()
    peft_model.eval()
    expected = peft_model(**batch, labels=labels).logits
    peft_model.save_pretrained(tmp_path)
    reloaded = PeftModel.from_pretrained(tiny_model(), tmp_path).eval()
    torch.testing.assert_close(reloaded(**batch, labels=labels).logits, expected)
    assert not torch.allclose(tiny_model()(**batch, labels=labels).logits, expected)
