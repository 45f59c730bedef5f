"""The real DNABERT-2-117M files (../shared/dnabert2, copied at test time, never committed): its tokenizer
extended with the GFF vocabulary, loading without prompts or remote code, its checkpoint layouts, and the
parameter counts of the README's full-size configurations."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
import torch
from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerFast

import init_model
from configuration_gffmoe import GffMoeConfig
from core.features import DIRECT, Gene, Transcript
from modeling_gffmoe import GffMoeForConditionalGeneration
from tests.fixtures.dnabert import (
    DNABERT_HUB_ID,
    REAL_FILES,
    TINY_DNABERT,
    dnabert_config,
    dnabert_state_dict,
    hub_cache_snapshot,
    write_real_layout_checkpoint,
)
from tests.fixtures.genomes import random_dna, shared_genome, write_text
from tests.fixtures.training import REPO, cli_env
from tests.test_codec import genome_windows
from tokenization.__main__ import main as tokenization_cli
from tokenization.codec import codec_vocabulary, normalise
from tokenization.coordinates import MAX_OFFSET, OFFSET_TOKENS, PointerCoordinates
from tokenization.tokenizer import (
    N_RUN_TOKENS,
    decode_ids,
    encode_source,
    load_tokenizer,
    target_ids,
)


@pytest.fixture(scope="module")
def real_tokenizer_json(real_dnabert_dir) -> dict:
    return json.loads((real_dnabert_dir / "tokenizer.json").read_text())


@pytest.fixture(scope="module")
def extended(real_dnabert_dir, tmp_path_factory):
    """The recipe's tokenizer: `python -m tokenization build_tk OUT --dnabert_path <the real files>`."""
    out = tmp_path_factory.mktemp("real_extended")
    assert tokenization_cli(["build_tk", str(out), "--dnabert_path", str(real_dnabert_dir)]) == 0
    return load_tokenizer(out)


def manifest_golden(real_dnabert_dir) -> tuple[str, list[int]]:
    """MANIFEST.md's golden encoding (DNA -> ids), as checked against the Hub's tokenizer."""
    text = (real_dnabert_dir / "MANIFEST.md").read_text()
    dna, ids = re.search(r"Golden encoding: `([ACGT]+)` ->\s*\[([\d, ]+)\]", text).groups()
    return dna, [int(i) for i in ids.split(",")]


def test_extension_keeps_ids_0_4095_and_the_golden_encoding(extended, real_tokenizer_json, real_dnabert_dir):
    real_vocab = real_tokenizer_json["model"]["vocab"]
    assert sorted(real_vocab.values()) == list(range(4096))
    vocab = extended.get_vocab()
    assert {token: vocab[token] for token in real_vocab} == real_vocab
    added = [*codec_vocabulary(), *N_RUN_TOKENS]  # the real BPE has no N
    assert sorted(vocab[t] for t in added) == list(range(4096, 4096 + len(added))) and len(
        extended
    ) == 4096 + len(added)
    dna, golden = manifest_golden(real_dnabert_dir)
    assert extended(dna)["input_ids"] == golden
    assert encode_source(extended, dna)["input_ids"] == golden
    assert encode_source(extended, dna.lower())["input_ids"] == golden  # soft-masked: upper-cased first
    assert (extended.pad_token_id, extended.unk_token_id, extended.cls_token_id) == (3, 0, 1)


def test_the_longest_real_token_fits_the_pointer_offsets(extended, real_tokenizer_json):
    longest = max(map(len, real_tokenizer_json["model"]["vocab"]))
    assert longest == 32 <= MAX_OFFSET == len(OFFSET_TOKENS)
    (repeat,) = [t for t in real_tokenizer_json["model"]["vocab"] if t == "CA" * 16]
    source = encode_source(extended, "TTGG" + repeat + "T")  # (CA)16 then T: the 32-bp token
    span = source["token_offsets"][source["input_ids"].index(extended.convert_tokens_to_ids(repeat))]
    scheme = PointerCoordinates(source["token_offsets"], len(extended))
    for bp in range(*span):  # every base inside the 32-bp token has a pointer coordinate
        assert scheme.decode(*scheme.encode(bp)) == bp


def test_n_runs_iupac_and_soft_masking_with_the_real_vocabulary(extended, real_dnabert_dir):
    plain = Tokenizer.from_file(str(real_dnabert_dir / "tokenizer.json"))
    left, right = random_dna(700, seed=1), random_dna(900, seed=2)
    dna = left + "N" * 10_000 + right.lower()[:450] + "RYKM" + right[454:]
    source = encode_source(extended, dna)
    ids, spans = source["input_ids"], source["token_offsets"]
    assert extended.unk_token_id not in ids  # a gap is not 10,000 [UNK]s
    n_tokens = [i for i, t in enumerate(extended.convert_ids_to_tokens(ids)) if set(t) == {"N"}]
    assert len(n_tokens) <= 10_000 // 64 + 6 + 4  # the run, plus the IUPAC codes' Ns
    assert sum(spans[i][1] - spans[i][0] for i in n_tokens) == 10_004
    # Every base is covered once, by a token no longer than the offsets can address ...
    assert [s for s, _ in spans[1:-1]] == [0, *(e for _, e in spans[1:-2])] and spans[-2][1] == len(dna)
    assert max(e - s for s, e in spans) <= MAX_OFFSET
    scheme = PointerCoordinates(spans, len(extended))
    assert all(scheme.decode(*scheme.encode(bp)) == bp for bp in range(0, len(dna), 7))
    # ... and the DNA around the Ns tokenizes exactly as DNABERT-2's own tokenizer does.
    assert ids[1 : n_tokens[0]] == plain.encode(left).ids[1:-1]
    assert ids[n_tokens[-1] + 1 : -1] == plain.encode(right[454:]).ids[1:-1]


@pytest.mark.genomes
@pytest.mark.parametrize("name", ["bsub168", "hsap_grch38_chr9_1mb"])
def test_codec_round_trips_on_real_windows_through_the_real_vocabulary(extended, name):
    fasta, gff = shared_genome(name)
    windows = genes = 0
    for i, (dna, window_genes) in enumerate(genome_windows(fasta, gff, window=9_000, stride=90_000)):
        if i >= 8:
            break
        source = encode_source(extended, dna)
        assert extended.unk_token_id not in source["input_ids"]
        scheme = PointerCoordinates(source["token_offsets"], len(extended))
        ids = target_ids(window_genes, extended, scheme)
        assert max(ids) < len(extended) + len(source["input_ids"])
        assert decode_ids(ids, extended, scheme).genes == normalise(window_genes)
        windows, genes = windows + 1, genes + len(window_genes)
    assert windows == 8 and genes


# ---------------------------------------------------------------- no prompt, no network, no remote code


def test_real_files_load_without_a_prompt_from_a_directory_or_an_offline_hub_id(real_dnabert_dir, tmp_path):
    """DNABERT-2's config.json has an auto_map into its remote code: AutoTokenizer asks whether to run it.
    Ours reads tokenizer.json / config.json / weights directly; with stdin closed nothing may ask."""
    local, snapshot = tmp_path / "dnabert2", hub_cache_snapshot(tmp_path / "cache")
    for folder in (local, snapshot):
        folder.mkdir(parents=True)
        for name in REAL_FILES:
            shutil.copy(real_dnabert_dir / name, folder / name)
    # The cached checkpoint: its config (auto_map included) and key layout at a tiny size, to stay fast.
    config = {**json.loads((real_dnabert_dir / "config.json").read_text()), **TINY_DNABERT}
    (snapshot / "config.json").write_text(json.dumps(config))
    torch.save(dnabert_state_dict(config), snapshot / "pytorch_model.bin")
    env = cli_env(HF_HUB_CACHE=str(tmp_path / "cache"), HF_HUB_OFFLINE="1")
    for source in (str(local), DNABERT_HUB_ID):
        out = tmp_path / source.replace("/", "_")
        if source == DNABERT_HUB_ID:  # the checkpoint and its tokenizer, offline from the cache
            argv = [sys.executable, "init_model.py", "--save_dir", str(out), "--dnabert_path", source]
            argv += ["--decoder_layers", "1", "--num_experts", "2", "--use_moe", "--tie_weights"]
        else:
            argv = [sys.executable, "-m", "tokenization", "build_tk", str(out), "--dnabert_path", source]
        done = subprocess.run(
            argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, output
        assert "custom code" not in output and "[y/N]" not in output
        assert PreTrainedTokenizerFast.from_pretrained(out)("ACGT")["input_ids"][0] == 1
    assert (tmp_path / DNABERT_HUB_ID.replace("/", "_") / "model.safetensors").is_file()


# ---------------------------------------------------------------- checkpoint layouts and full-size counts


def test_bertmodel_layout_maps_every_tensor_and_starts_the_head_random(
    tmp_path, dnabert_tokenizer_dir, capsys
):
    """A BertModel checkpoint (no `bert.` prefix, no MLM head): every tensor is used, the head is random."""
    config = dnabert_config(4096, **TINY_DNABERT)
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(config))
    from safetensors.torch import save_file

    tensors = dnabert_state_dict(config, mlm_head=False)
    assert not any(key.startswith(("bert.", "cls.")) for key in tensors)
    save_file(tensors, tmp_path / "ckpt" / "model.safetensors")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(dnabert_tokenizer_dir / name, tmp_path / "ckpt" / name)
    argv = ["--save_dir", str(tmp_path / "out"), "--dnabert_path", str(tmp_path / "ckpt"), "--use_moe"]
    assert init_model.main([*argv, "--num_experts", "2", "--decoder_layers", "1", "--tie_weights"]) == 0
    out = capsys.readouterr().out
    assert f"from {len(tensors)} of {len(tensors)} checkpoint keys" in out
    assert re.search(r"output head\s+random", out)
    model = GffMoeForConditionalGeneration.from_pretrained(tmp_path / "out")
    assert torch.equal(model.shared.weight[:4096], tensors["embeddings.word_embeddings.weight"])
    # a missing encoder tensor is an error, named
    del tensors["encoder.layer.1.mlp.wo.bias"]
    save_file(tensors, tmp_path / "ckpt" / "model.safetensors")
    assert init_model.main([*argv, "--num_experts", "2"]) == 2
    assert "encoder.layer.1.mlp.wo.bias" in capsys.readouterr().err


def meta_counts(real_config: dict, decoder_layers: int, vocab_size: int) -> tuple[int, int]:
    """(total, active per token) parameters of the full-size model, built on the meta device."""
    fields = {k: real_config[k] for k in init_model.DNABERT_CONFIG_FIELDS if k in real_config}
    config = GffMoeConfig(
        **{**fields, "vocab_size": vocab_size}, decoder_layers=decoder_layers, num_experts=32, moe_top_k=2
    )
    with torch.device("meta"):
        model = GffMoeForConditionalGeneration(config)
    total = sum(p.numel() for p in model.parameters())  # the tied head counted once
    experts = sum(p.numel() for n, p in model.named_parameters() if ".moe.experts." in n)
    encoder = sum(p.numel() for n, p in model.named_parameters() if n.startswith(("shared.", "encoder.")))
    assert 116e6 < encoder < 118e6  # DNABERT-2-117M, grown by the GFF rows
    return total, total - experts + experts * 2 // 32


def test_readme_memory_table_matches_the_full_size_models(real_dnabert_dir, extended):
    real = json.loads((real_dnabert_dir / "config.json").read_text())
    table = (REPO / "README.md").read_text()
    for layers, (total, active) in {4: ("1.05 B", "196 M"), 12: ("2.90 B", "347 M")}.items():
        row = next(line for line in table.splitlines() if f"+ {layers} decoder layers x 32 experts" in line)
        assert f"{total} ({active})" in row
        got_total, got_active = meta_counts(real, layers, len(extended))
        assert f"{got_total / 1e9:.2f} B" == total and f"{got_active / 1e6:.0f} M" == active
        weights_gb = 16 * got_total / 1e9  # fp32 master weights, grads and two AdamW moments
        assert f"{weights_gb:.1f} GB" in row


# ---------------------------------------------------------------- the full-size checkpoint and the recipe


def run(argv: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """A command as a user types it, from the repository root, stdin closed."""
    return subprocess.run(
        argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def full_size_init(real_dnabert_dir, tmp_path_factory):
    """The recipe's first command on DNABERT-2-117M as a hub id, resolved offline from a cache holding the
    real config.json and tokenizer files and random weights of the real shapes under the real key names
    (BertForMaskedLM, pytorch_model.bin). A small decoder (1 layer x 2 experts) keeps it fast on a CPU."""
    root = tmp_path_factory.mktemp("full_size")
    checkpoint = write_real_layout_checkpoint(hub_cache_snapshot(root / "cache"))
    env = cli_env(HF_HUB_CACHE=str(root / "cache"), HF_HUB_OFFLINE="1")
    model_dir = root / "gffmoe-init"
    argv = [sys.executable, "init_model.py", "--save_dir", str(model_dir), "--dnabert_path", DNABERT_HUB_ID]
    argv += ["--use_moe", "--num_experts", "2", "--moe_top_k", "2", "--tie_weights", "--decoder_layers", "1"]
    done = run(argv, env)
    assert done.returncode == 0, done.stderr
    keys = len(torch.load(checkpoint / "pytorch_model.bin", weights_only=True))
    return model_dir, env, keys, done.stdout


@pytest.mark.slow
def test_full_size_checkpoint_maps_every_tensor_and_counts_117m(full_size_init):
    _, _, keys, out = full_size_init
    assert re.search(rf"mapped \d+ tensors from {keys} of {keys} checkpoint keys", out)
    counts = {
        m[1]: int(m[2].replace(",", "")) for m in re.finditer(r"^(\S[\w -]*?)\s+\S+\s+([\d,]+)$", out, re.M)
    }
    assert 116e6 < counts["embeddings"] + counts["encoder"] < 118e6  # DNABERT-2-117M
    assert re.search(r"output head\s+copied", out)


@pytest.mark.slow
def test_the_recipe_as_written_ends_in_a_model_that_annotates(full_size_init, tmp_path, capsys):
    """init_model.py without --tokenizer (the model keeps DNABERT-2's), then init_tk, append_tk into the
    model's tokenizer.json and resize_model, then annotate.py. Before the vocabulary: one line, no traceback.
    (The CLIs' main() runs in-process where a fresh process would only add start-up time.)"""
    import annotate as annotate_script

    model_dir, env, _, _ = full_size_init
    fasta = write_text(tmp_path / "g.fa", f">ctg\n{random_dna(600, seed=4)}\n")
    annotate = ["--model", str(model_dir), "--fasta", str(fasta), "--out", str(tmp_path / "pred.gff3")]
    annotate += ["--max_new_tokens", "12", "--quiet"]
    assert annotate_script.main(annotate) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert all(
        f"python -m tokenization {command}" in line for command in ("init_tk", "append_tk", "resize_model")
    )

    tokens = tmp_path / "new_tokens.txt"
    for command in (
        ["init_tk", str(tokens)],
        ["append_tk", str(tokens), str(model_dir / "tokenizer.json")],
        ["resize_model", str(model_dir), str(model_dir)],
    ):
        assert tokenization_cli(command) == 0
    done = run([sys.executable, "annotate.py", *annotate], env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "pred.gff3").read_text().startswith("##gff-version 3")
    config = json.loads((model_dir / "config.json").read_text())
    tokenizer = load_tokenizer(model_dir)
    assert (
        config["decoder_start_token_id"] == tokenizer.bos_token_id == tokenizer.convert_tokens_to_ids("<bos>")
    )
    assert config["vocab_size"] == len(tokenizer)

    # The result trains one step, saves, and a fresh process reloads it and generates the same tokens.
    from transformers import AutoModelForSeq2SeqLM

    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir, trust_remote_code=True)
    dna = random_dna(900, seed=5)
    source = encode_source(tokenizer, dna)
    genes = [Gene(100, 399, "+", transcripts=(Transcript(DIRECT, ((100, 399),), (100, 399)),))]
    labels = target_ids(genes, tokenizer, PointerCoordinates(source["token_offsets"], len(tokenizer)))
    batch = {k: torch.tensor([v]) for k, v in source.items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)  # AdamW's states would triple the memory
    model.train()
    loss = model(**batch, labels=torch.tensor([labels])).loss
    loss.backward()
    before = model.decoder.layers[0].moe.experts.gate_up_proj.detach().clone()
    optimizer.step()
    assert torch.isfinite(loss) and not torch.equal(model.decoder.layers[0].moe.experts.gate_up_proj, before)
    trained = tmp_path / "trained"
    model.eval().save_pretrained(trained)
    tokenizer.save_pretrained(trained)
    expected = model.generate(**tokenizer(dna, return_tensors="pt"), max_new_tokens=6)[0].tolist()
    script = (
        "import sys; from transformers import AutoModelForSeq2SeqLM, AutoTokenizer\n"
        f"model = AutoModelForSeq2SeqLM.from_pretrained({str(trained)!r}, trust_remote_code=True)\n"
        f"tokenizer = AutoTokenizer.from_pretrained({str(trained)!r}, trust_remote_code=True)\n"
        f"print(model.generate(**tokenizer({dna!r}, return_tensors='pt'), max_new_tokens=6)[0].tolist())\n"
    )
    done = run([sys.executable, "-c", script], {k: v for k, v in env.items() if k != "PYTHONPATH"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(expected), done.stdout


def test_full_size_bertmodel_layout_maps_every_tensor_onto_the_real_shapes(real_dnabert_dir, tmp_path):
    """The un-prefixed BertModel layout at full size: every tensor has its place, of the same shape."""
    checkpoint = init_model.load_dnabert(str(write_real_layout_checkpoint(tmp_path / "ckpt", mlm_head=False)))
    config = init_model.build_config(
        init_model.parse_args(["--save_dir", "unused", "--use_moe", "--num_experts", "32", "--tie_weights"]),
        checkpoint,
        None,
    )
    mapping = init_model.dnabert_weight_mapping(checkpoint, config)
    assert mapping.used == set(checkpoint.state_dict) and not any(
        k.startswith("lm_head") for k in mapping.copies
    )
    with torch.device("meta"):
        params = dict(GffMoeForConditionalGeneration(config).named_parameters())
    assert all(params[target].shape == tensor.shape for target, tensor in mapping.copies.items())
    assert sum(t.numel() for t in checkpoint.state_dict.values()) == pytest.approx(117e6, rel=0.01)
