"""The encoder's per-base input: bases inside BPE tokens by place and by codon phase (GffMoeBaseEmbedding)."""

from __future__ import annotations

import pytest
import torch

from modeling_gffmoe import BASE_CODES, NO_BASE, UNKNOWN_LENGTH, GffMoeForConditionalGeneration
from tests.fixtures.training import tiny_config

torch.set_num_threads(1)
# ids 0-3 specials, then DNA tokens of 1-5 bp, then an annotation token
TOKENS = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "A", "C", "G", "T", "GAT", "TTGCA", "NAC", "<gene>"]


def model_with_vocabulary(seed: int = 0, random_weights: bool = True) -> GffMoeForConditionalGeneration:
    torch.manual_seed(seed)
    config = tiny_config(vocab_size=len(TOKENS))
    model = GffMoeForConditionalGeneration(config).eval()
    model.set_dna_vocabulary(TOKENS)
    if random_weights:
        with torch.no_grad():
            model.encoder.base_embedding.by_position.normal_()
            model.encoder.base_embedding.by_phase.normal_()
    return model


def tokenized(tokens: list[str], first_offset: int = 0) -> dict[str, torch.Tensor]:
    """[CLS] tokens [SEP] with each DNA token's half-open span, the first starting at `first_offset`."""
    spans, position = [(0, 0)], first_offset
    for token in tokens:
        spans.append((position, position + len(token)))
        position += len(token)
    spans.append((0, 0))
    ids = [TOKENS.index("[CLS]")] + [TOKENS.index(t) for t in tokens] + [TOKENS.index("[SEP]")]
    return {
        "input_ids": torch.tensor([ids]),
        "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
        "token_offsets": torch.tensor([spans]),
    }


def expected_vector(model, token: str, offset: int) -> torch.Tensor:
    """Written out: one by_position row per (place, base), one by_phase row per (base, window offset mod 3)."""
    embedding = model.encoder.base_embedding
    vector = torch.zeros(model.config.hidden_size)
    for place, base in enumerate(token):
        if base in "ACGT":
            code = BASE_CODES[base]
            vector += (
                embedding.by_position[4 * place + code] + embedding.by_phase[3 * code + (offset + place) % 3]
            )
    return vector


def test_each_token_sums_its_bases_by_place_and_codon_phase():
    model = model_with_vocabulary()
    tokens = ["GAT", "TTGCA", "NAC", "C"]
    batch = tokenized(tokens, first_offset=7)
    got = model.encoder.base_embedding(batch["input_ids"], batch["token_offsets"])[0]
    offsets = batch["token_offsets"][0, 1:-1, 0].tolist()
    for i, (token, offset) in enumerate(zip(tokens, offsets, strict=True), start=1):
        torch.testing.assert_close(got[i], expected_vector(model, token, offset))
    assert not got[0].any() and not got[-1].any()  # [CLS] and [SEP] spell no bases


def test_a_three_base_shift_keeps_the_frame_and_a_one_base_shift_changes_it():
    model = model_with_vocabulary()
    embed = model.encoder.base_embedding

    def vector(offset):
        batch = tokenized(["TTGCA"], first_offset=offset)
        return embed(batch["input_ids"], batch["token_offsets"])[0, 1]

    torch.testing.assert_close(vector(2), vector(5))
    assert not torch.allclose(vector(2), vector(3))


def test_zero_initialised_encoder_is_unchanged_and_still_learns():
    model = model_with_vocabulary(random_weights=False)
    batch = tokenized(["GAT", "TTGCA", "A"], first_offset=1)
    with_bases = model.encoder(**batch).last_hidden_state
    without = model.encoder(batch["input_ids"], batch["attention_mask"]).last_hidden_state
    torch.testing.assert_close(with_bases, without)

    labels = torch.tensor([[TOKENS.index("<gene>"), 2]])
    model.train()
    model(**batch, labels=labels).loss.backward()
    assert model.encoder.base_embedding.by_position.grad.abs().sum() > 0
    assert model.encoder.base_embedding.by_phase.grad.abs().sum() > 0


def test_resizing_keeps_the_spelling_and_saving_keeps_it(tmp_path):
    model = model_with_vocabulary()
    before = model.encoder.base_embedding.token_bases.clone()
    model.resize_token_embeddings(len(TOKENS) + 3, mean_resizing=False)
    bases = model.encoder.base_embedding.token_bases
    assert bases.shape[0] == len(TOKENS) + 3
    torch.testing.assert_close(bases[: len(TOKENS)], before)
    assert (bases[len(TOKENS) :] == NO_BASE).all()  # added tokens are not DNA

    model.save_pretrained(tmp_path)
    reloaded = GffMoeForConditionalGeneration.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(reloaded.encoder.base_embedding.token_bases, bases)
    batch = tokenized(["TTGCA", "GAT"], first_offset=4)
    torch.testing.assert_close(
        reloaded.encoder(**batch).last_hidden_state, model.encoder(**batch).last_hidden_state
    )


def test_init_model_spells_the_tokenizer_vocabulary(tmp_path, gff_tokenizer):
    import init_model

    tokenizer_dir = tmp_path / "tokenizer"
    gff_tokenizer.save_pretrained(tokenizer_dir)
    argv = ["--save_dir", str(tmp_path / "model"), "--tokenizer", str(tokenizer_dir), "--hidden_size", "16"]
    argv += ["--intermediate_size", "16", "--num_hidden_layers", "1", "--decoder_layers", "1"]
    assert init_model.main(argv) == 0
    model = GffMoeForConditionalGeneration.from_pretrained(tmp_path / "model")
    bases = model.encoder.base_embedding.token_bases
    spelled = 0
    for token_id, token in enumerate(gff_tokenizer.convert_ids_to_tokens(list(range(len(gff_tokenizer))))):
        if set(token) <= set("ACGTN"):
            assert [BASE_CODES[b] for b in token] == bases[token_id, : len(token)].tolist(), token
            assert (bases[token_id, len(token) :] == NO_BASE).all()
            spelled += 1
        elif token == "[UNK]":  # stands for any number of bases
            assert bases[token_id, 0] == UNKNOWN_LENGTH and (bases[token_id, 1:] == NO_BASE).all()
        else:  # specials and annotation tokens spell nothing
            assert (bases[token_id] == NO_BASE).all(), token
    assert spelled > 4


def test_token_offsets_are_derived_from_the_spelling():
    model = model_with_vocabulary()
    batch = tokenized(["GAT", "TTGCA", "NAC", "C"])
    explicit = batch.pop("token_offsets")
    derived = model.encoder.base_embedding.token_offsets(batch["input_ids"], batch["attention_mask"])
    assert derived.tolist() == explicit.tolist()
    torch.testing.assert_close(
        model.encoder(**batch).last_hidden_state,
        model.encoder(**batch, token_offsets=explicit).last_hidden_state,
    )
    # [PAD] after the sequence spans nothing; an attended [UNK] has no known length and is refused
    padded = torch.cat([batch["input_ids"], torch.tensor([[TOKENS.index("[PAD]")]])], 1)
    mask = torch.cat([batch["attention_mask"], torch.zeros(1, 1, dtype=torch.long)], 1)
    assert model.encoder.base_embedding.token_offsets(padded, mask)[0, :-1].tolist() == explicit[0].tolist()
    unknown = batch["input_ids"].clone()
    unknown[0, 2] = TOKENS.index("[UNK]")
    with pytest.raises(ValueError, match=r"\[UNK\].*clean_dna"):
        model.encoder(unknown, batch["attention_mask"])
