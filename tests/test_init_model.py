"""init_model.py: DNABERT-2 weights into GFF-MoE following the initialisation table."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

import init_model
from modeling_gffmoe import GffMoeForConditionalGeneration
from tests.fixtures.dnabert import TINY_DNABERT


@pytest.fixture(scope="module")
def gff_tokenizer_dir(tmp_path_factory, gff_tokenizer):
    out = tmp_path_factory.mktemp("gff_tokenizer")
    gff_tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def initialised(tmp_path_factory, tiny_dnabert_dir, gff_tokenizer_dir):
    save_dir = tmp_path_factory.mktemp("gffmoe_init")
    argv = [
        "--save_dir",
        str(save_dir),
        "--dnabert_path",
        str(tiny_dnabert_dir),
        "--use_moe",
        "--num_experts",
        "4",
    ]
    argv += [
        "--moe_top_k",
        "2",
        "--tie_weights",
        "--tokenizer",
        str(gff_tokenizer_dir),
        "--decoder_layers",
        "2",
    ]
    assert init_model.main(argv) == 0
    model = GffMoeForConditionalGeneration.from_pretrained(save_dir)
    return model, load_file(tiny_dnabert_dir / "model.safetensors"), save_dir


def test_every_copied_tensor_is_bit_identical(initialised):
    model, source, _ = initialised
    params = dict(model.state_dict())
    hidden, old_vocab = TINY_DNABERT["hidden_size"], source["bert.embeddings.word_embeddings.weight"].shape[0]
    assert torch.equal(params["shared.weight"][:old_vocab], source["bert.embeddings.word_embeddings.weight"])
    assert torch.equal(
        params["encoder.token_type_embeddings.weight"], source["bert.embeddings.token_type_embeddings.weight"]
    )
    for ours in ("encoder.embedding_norm", "decoder.embedding_norm"):
        assert torch.equal(params[f"{ours}.weight"], source["bert.embeddings.LayerNorm.weight"])
        assert torch.equal(params[f"{ours}.bias"], source["bert.embeddings.LayerNorm.bias"])
    pairs = [(f"encoder.layers.{i}", f"bert.encoder.layer.{i}") for i in range(3)]
    pairs += [("decoder.layers.0", "bert.encoder.layer.0"), ("decoder.layers.1", "bert.encoder.layer.1")]
    for ours, theirs in pairs:
        wqkv, bqkv = (
            source[f"{theirs}.attention.self.Wqkv.weight"],
            source[f"{theirs}.attention.self.Wqkv.bias"],
        )
        for i, name in enumerate("qkv"):
            assert torch.equal(
                params[f"{ours}.self_attn.{name}_proj.weight"], wqkv[i * hidden : (i + 1) * hidden]
            )
            assert torch.equal(
                params[f"{ours}.self_attn.{name}_proj.bias"], bqkv[i * hidden : (i + 1) * hidden]
            )
        assert torch.equal(
            params[f"{ours}.self_attn.o_proj.weight"], source[f"{theirs}.attention.output.dense.weight"]
        )
        assert torch.equal(
            params[f"{ours}.self_attn_norm.weight"], source[f"{theirs}.attention.output.LayerNorm.weight"]
        )
        norm = "mlp_norm" if ours.startswith("encoder") else "moe_norm"
        assert torch.equal(params[f"{ours}.{norm}.bias"], source[f"{theirs}.mlp.layernorm.bias"])
    for i in range(3):
        assert torch.equal(
            params[f"encoder.layers.{i}.mlp.gate_up_proj.weight"],
            source[f"bert.encoder.layer.{i}.mlp.gated_layers.weight"],
        )
        assert torch.equal(
            params[f"encoder.layers.{i}.mlp.down_proj.bias"], source[f"bert.encoder.layer.{i}.mlp.wo.bias"]
        )
    assert torch.equal(
        params["lm_head_transform.dense.weight"], source["cls.predictions.transform.dense.weight"]
    )
    assert torch.equal(
        params["lm_head_transform.norm.weight"], source["cls.predictions.transform.LayerNorm.weight"]
    )
    assert torch.equal(params["lm_head.bias"][:old_vocab], source["cls.predictions.decoder.bias"])
    assert model.lm_head.weight.data_ptr() == model.shared.weight.data_ptr()


def test_experts_are_upcycled_and_new_parts_random(initialised):
    model, source, _ = initialised
    for i, layer in enumerate(model.decoder.layers):
        gated = source[f"bert.encoder.layer.{i}.mlp.gated_layers.weight"]
        experts = layer.moe.experts.gate_up_proj.detach()
        assert experts.shape[0] == 4
        for e in range(4):
            difference = (experts[e] - gated).std() / gated.std()
            assert 0 < difference < 0.05  # a copy plus small noise
        assert not torch.equal(experts[0], experts[1])  # noise differs per expert
        cross_q = layer.cross_attn.q_proj.weight.detach()
        assert not any(
            torch.allclose(cross_q, source[f"bert.encoder.layer.{j}.attention.self.Wqkv.weight"][:32])
            for j in range(3)
        )


def test_vocabulary_resized_to_the_tokenizer_with_mean_rows(initialised, gff_tokenizer):
    model, source, save_dir = initialised
    old = source["bert.embeddings.word_embeddings.weight"]
    assert model.config.vocab_size == len(gff_tokenizer) > old.shape[0]
    torch.testing.assert_close(
        model.shared.weight[old.shape[0] :], old.mean(0).expand(len(gff_tokenizer) - old.shape[0], -1)
    )
    assert model.generation_config.decoder_start_token_id == gff_tokenizer.bos_token_id
    assert model.generation_config.eos_token_id == gff_tokenizer.eos_token_id
    assert (save_dir / "tokenizer.json").is_file() and (save_dir / "modeling_gffmoe.py").is_file()


def test_pytorch_bin_checkpoint_and_random_experts(tmp_path, tiny_dnabert_dir, capsys):
    bin_dir = tmp_path / "dnabert_bin"
    bin_dir.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (bin_dir / name).write_bytes((tiny_dnabert_dir / name).read_bytes())
    torch.save(load_file(tiny_dnabert_dir / "model.safetensors"), bin_dir / "pytorch_model.bin")
    argv = [
        "--save_dir",
        str(tmp_path / "out"),
        "--dnabert_path",
        str(bin_dir),
        "--use_moe",
        "--num_experts",
        "2",
    ]
    argv += [
        "--expert_init",
        "random",
        "--tie_weights",
        "--decoder_layers",
        "1",
        "--hidden_dropout_prob",
        "0",
    ]
    assert init_model.main(argv) == 0
    table = capsys.readouterr().out
    assert "experts" in table and "random" in table and "active per token" in table
    model = GffMoeForConditionalGeneration.from_pretrained(tmp_path / "out")
    assert model.config.hidden_dropout_prob == 0.0  # the flag overrides DNABERT-2's 0.1
    gated = load_file(tiny_dnabert_dir / "model.safetensors")["bert.encoder.layer.0.mlp.gated_layers.weight"]
    assert (model.decoder.layers[0].moe.experts.gate_up_proj[0] - gated).std() > 0.5 * gated.std()


def test_missing_or_foreign_checkpoint_fails_clearly(tmp_path, tiny_dnabert_dir, capsys):
    (tmp_path / "empty").mkdir()
    assert (
        init_model.main(["--save_dir", str(tmp_path / "o"), "--dnabert_path", str(tmp_path / "empty")]) == 2
    )
    assert "config.json" in capsys.readouterr().err
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "config.json").write_bytes((tiny_dnabert_dir / "config.json").read_bytes())
    tensors = load_file(tiny_dnabert_dir / "model.safetensors") | {
        "bert.pooler.dense.weight": torch.zeros(2, 2)
    }
    from safetensors.torch import save_file

    save_file(tensors, extra / "model.safetensors")
    assert (
        init_model.main(["--save_dir", str(tmp_path / "o"), "--dnabert_path", str(extra), "--use_moe"]) == 2
    )
    assert "pooler.dense.weight" in capsys.readouterr().err


def test_small_random_model_with_tokenizer(tmp_path, gff_tokenizer_dir, gff_tokenizer):
    argv = [
        "--save_dir",
        str(tmp_path),
        "--tokenizer",
        str(gff_tokenizer_dir),
        "--use_moe",
        "--hidden_size",
        "32",
    ]
    assert (
        init_model.main(
            [*argv, "--intermediate_size", "48", "--num_hidden_layers", "1", "--decoder_layers", "1"]
        )
        == 0
    )
    model = GffMoeForConditionalGeneration.from_pretrained(tmp_path)
    assert model.config.vocab_size == len(gff_tokenizer) and model.config.num_experts == 8
    assert model.config.hidden_dropout_prob == 0.1  # DNABERT-2's default


@pytest.mark.parametrize("option", [["--num_experts", "32"], ["--moe_top_k", "2"]])
def test_expert_options_without_use_moe_are_refused_not_silently_dense(
    tmp_path, gff_tokenizer_dir, capsys, option
):
    argv = ["--save_dir", str(tmp_path / "m"), "--tokenizer", str(gff_tokenizer_dir), "--hidden_size", "32"]
    assert init_model.main([*argv, *option]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--use_moe" in err and "dense" in err
    assert not (tmp_path / "m").exists()
    assert (
        init_model.main([*argv, "--intermediate_size", "48", "--decoder_layers", "1"]) == 0
    )  # dense, as asked
    assert GffMoeForConditionalGeneration.from_pretrained(tmp_path / "m").config.num_experts == 1


def test_track_convolutions_without_a_track_head_are_refused(tmp_path, gff_tokenizer_dir, capsys):
    argv = ["--save_dir", str(tmp_path / "m"), "--tokenizer", str(gff_tokenizer_dir), "--hidden_size", "32"]
    argv += ["--intermediate_size", "48", "--decoder_layers", "1", "--track_conv_channels", "8"]
    assert init_model.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--track_loss_weight" in err and "no track head" in err
    assert not (tmp_path / "m").exists()
    assert init_model.main([*argv, "--track_loss_weight", "1"]) == 0
    model = GffMoeForConditionalGeneration.from_pretrained(tmp_path / "m")
    assert model.config.track_conv_channels == 8 and len(model.track_head.convs) == 4
