"""The extended DNABERT-2 tokenizer: DNA exactly as the plain BPE, GFF text lossless, CLI, model resize."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

from core.features import DIRECT, Gene, Transcript
from tests.fixtures.genomes import random_dna, write_text
from tests.test_codec import windows
from tokenization.__main__ import main as cli
from tokenization.codec import codec_vocabulary, encode, genes_to_text, normalise, text_to_genes
from tokenization.coordinates import MAX_OFFSET, NumberCoordinates, PointerCoordinates
from tokenization.tokenizer import (
    SPECIAL_TOKENS,
    TokenizerError,
    clean_dna,
    decode_ids,
    encode_source,
    extend_tokenizer,
    load_dnabert_tokenizer,
    target_ids,
    tokens_to_ids,
)

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
VOCAB = codec_vocabulary()


def test_fixture_has_the_dnabert2_layout(dnabert_tokenizer_dir):
    spec = json.loads((dnabert_tokenizer_dir / "tokenizer.json").read_text())
    assert spec["model"]["type"] == "BPE" and spec["model"]["unk_token"] == "[UNK]"
    assert len(spec["model"]["vocab"]) == 4096
    assert spec["normalizer"] is None and spec["pre_tokenizer"]["type"] == "Whitespace"
    assert spec["post_processor"]["type"] == "TemplateProcessing"
    assert [t["content"] for t in sorted(spec["added_tokens"], key=lambda t: t["id"])] == list(SPECIAL_TOKENS)
    assert [t["id"] for t in spec["added_tokens"]] == [0, 1, 2, 3, 4]
    config = json.loads((dnabert_tokenizer_dir / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"


def test_special_tokens_come_from_the_files(dnabert_tokenizer_dir, tmp_path):
    # Swap [PAD] and [UNK] roles in the config: the loaded tokenizer must follow the file, not a guess.
    shutil.copytree(dnabert_tokenizer_dir, tmp_path / "tk")
    config_path = tmp_path / "tk" / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["pad_token"], config["unk_token"] = "[UNK]", "[PAD]"
    config_path.write_text(json.dumps(config))
    tokenizer = load_dnabert_tokenizer(tmp_path / "tk")
    assert tokenizer.pad_token_id == 0 and tokenizer.unk_token_id == 3
    plain = load_dnabert_tokenizer(dnabert_tokenizer_dir)
    assert (plain.cls_token_id, plain.sep_token_id, plain.pad_token_id, plain.mask_token_id) == (1, 2, 3, 4)


DNA = st.text(alphabet="ACGTNacgtnRYKMSW", min_size=1, max_size=400)


@SETTINGS
@given(dna=DNA)
def test_dna_tokenizes_exactly_as_the_plain_bpe(dnabert_tokenizer_dir, gff_tokenizer, dna):
    plain = Tokenizer.from_file(str(dnabert_tokenizer_dir / "tokenizer.json"))
    source = encode_source(gff_tokenizer, dna)
    cleaned = clean_dna(dna)
    assert source["input_ids"] == plain.encode(cleaned).ids
    assert source["attention_mask"] == [1] * len(source["input_ids"])
    offsets = source["token_offsets"]
    assert offsets[0] == offsets[-1] == (0, 0)  # [CLS], [SEP]
    # The DNA tokens tile the window exactly, each span spelling its token.
    assert [s for s, _ in offsets[1:-1]] == [0, *(e for _, e in offsets[1:-2])] and offsets[-2][1] == len(dna)
    pieces = gff_tokenizer.convert_ids_to_tokens(source["input_ids"][1:-1])
    assert [cleaned[s:e] for s, e in offsets[1:-1]] == pieces


def test_source_normalisation_and_truncation(gff_tokenizer):
    assert clean_dna("acgtnRYU") == "ACGTNNNT"
    with pytest.raises(TokenizerError, match="position 3"):
        clean_dna("ACG-T")
    source = encode_source(gff_tokenizer, random_dna(2000, seed=5), max_length=16)
    assert len(source["input_ids"]) == 16 and source["token_offsets"][-1] == (0, 0)


def bacterial_gene(start: int, end: int, strand: str = "+") -> Gene:
    return Gene(start, end, strand, transcripts=(Transcript(DIRECT, ((start, end),), (start, end)),))


def test_hints_follow_the_dna_as_evidence_no_pointer_can_name(gff_tokenizer):
    dna = random_dna(600, seed=7)
    plain = encode_source(gff_tokenizer, dna)
    assert encode_source(gff_tokenizer, dna, hints="") == plain == encode_source(gff_tokenizer, dna, hints=[])
    hints = [bacterial_gene(300, 449, "-"), bacterial_gene(10, 99)]
    source = encode_source(gff_tokenizer, dna, hints=hints)
    # Genes and their stored codec text give the same input: [CLS] DNA [SEP] [HIT] records [SEP].
    assert encode_source(gff_tokenizer, dna, hints=genes_to_text(hints)) == source
    n = len(plain["input_ids"])
    assert source["input_ids"][:n] == plain["input_ids"]
    assert source["token_offsets"][:n] == plain["token_offsets"]
    records = tokens_to_ids(gff_tokenizer, ["[HIT]", *encode(hints, NumberCoordinates())])
    assert source["input_ids"][n:] == [*records, gff_tokenizer.sep_token_id]
    assert source["token_offsets"][n:] == [(0, 0)] * (len(records) + 1)
    assert source["attention_mask"] == [1] * len(source["input_ids"])
    # Pointer coordinates resolve through DNA tokens only, never through hint tokens.
    pointers = PointerCoordinates(source["token_offsets"], len(gff_tokenizer))
    assert all(pointers.position_of(bp) < n for bp in range(len(dna)))
    with pytest.raises(TokenizerError, match="hint text does not decode"):
        encode_source(gff_tokenizer, dna, hints="<gene> <n0>")


def test_hints_are_cut_first_and_whole_records_only(gff_tokenizer):
    dna = random_dna(600, seed=8)
    hints = [bacterial_gene(10, 99), bacterial_gene(200, 299), bacterial_gene(400, 590)]
    dna_tokens = len(encode_source(gff_tokenizer, dna)["input_ids"])
    per_gene = len(encode(hints[:1], NumberCoordinates()))
    # Room for [HIT], two records and [SEP]: the first two records (canonical order) are kept whole.
    source = encode_source(gff_tokenizer, dna, dna_tokens + 2 + 2 * per_gene + per_gene - 1, hints)
    assert source == encode_source(gff_tokenizer, dna, hints=hints[:2])
    # No room for one record: the plain input, never DNA given up for hints.
    assert encode_source(gff_tokenizer, dna, dna_tokens + 2, hints) == encode_source(gff_tokenizer, dna)
    # DNA too long for max_length: truncated as without hints, and no hint part.
    assert encode_source(gff_tokenizer, dna, 24, hints) == encode_source(gff_tokenizer, dna, 24)
    # Hints reaching past the window are clipped to it, the cut edge open.
    clipped = encode_source(gff_tokenizer, dna[:500], hints=hints)
    cut = replace(bacterial_gene(400, 499), open_right=True)
    assert clipped == encode_source(gff_tokenizer, dna[:500], hints=[*hints[:2], cut])


@SETTINGS
@given(case=windows(max_window=50_000))
def test_gff_text_tokenizes_to_exactly_its_tokens(gff_tokenizer, case):
    _, genes = case
    text = genes_to_text(genes)
    expected = tokens_to_ids(gff_tokenizer, text.split())
    assert gff_tokenizer(text, add_special_tokens=False).input_ids == expected
    # Tokens delimit themselves: no separators needed, and no token is read inside another.
    assert gff_tokenizer("".join(text.split()), add_special_tokens=False).input_ids == expected
    assert text_to_genes(gff_tokenizer.decode(expected)).genes == normalise(genes)


def test_every_gff_token_is_one_id_and_never_splits(gff_tokenizer):
    ids = gff_tokenizer(" ".join(VOCAB), add_special_tokens=False).input_ids
    assert ids == gff_tokenizer.convert_tokens_to_ids(VOCAB)
    assert len(set(ids)) == len(VOCAB) and min(ids) >= 4096  # none collides with a DNA token
    assert ids == list(range(ids[0], ids[0] + len(VOCAB)))  # appended in codec order
    assert gff_tokenizer.bos_token == "<bos>" and gff_tokenizer.eos_token == "<eos>"


def test_extend_is_idempotent(dnabert_tokenizer_dir):
    tokenizer = load_dnabert_tokenizer(dnabert_tokenizer_dir)
    assert extend_tokenizer(tokenizer) == len(VOCAB)
    vocab = tokenizer.get_vocab()
    assert extend_tokenizer(tokenizer) == 0 and tokenizer.get_vocab() == vocab
    assert extend_tokenizer(tokenizer, ["<my_RNA>", "<gene>"]) == 1 and tokenizer.get_vocab()[
        "<my_RNA>"
    ] == len(vocab)
    with pytest.raises(TokenizerError, match="not a GFF token"):
        extend_tokenizer(tokenizer, ["gene"])


def test_reloads_identically_with_auto_tokenizer(gff_tokenizer, tmp_path):
    gff_tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded.get_vocab() == gff_tokenizer.get_vocab() and len(reloaded) == len(gff_tokenizer)
    assert reloaded.all_special_tokens == gff_tokenizer.all_special_tokens
    sample = "ACGTTGCA" * 20 + " <gene> <n0> <n5> <+> " + "TTGACA" * 5
    assert reloaded(sample).input_ids == gff_tokenizer(sample).input_ids


def test_pointer_targets_use_the_slots_after_the_vocabulary(gff_tokenizer):
    from core.features import DIRECT, Gene, Transcript

    source = encode_source(gff_tokenizer, random_dna(3000, seed=9))
    size = len(gff_tokenizer)
    scheme = PointerCoordinates(source["token_offsets"], vocab_size=size)
    genes = [
        Gene(10, 909, "+", "gene", (Transcript(DIRECT, ((10, 909),), (10, 909)),)),
        Gene(1200, 2999, "-", "gene", (Transcript("mRNA", ((1200, 1500), (1800, 2999)), (1300, 2500), 2),)),
    ]
    ids = target_ids(genes, gff_tokenizer, scheme)
    pointers = [i - size for i in ids if i >= size]
    assert len(pointers) == sum(t.startswith("<@") for t in encode(genes, scheme)) == 2 + 2 + 2 + 2
    assert all(0 < p < len(source["input_ids"]) - 1 for p in pointers)  # DNA tokens, not [CLS]/[SEP]
    assert decode_ids(ids, gff_tokenizer, scheme).genes == genes


def test_unknown_tokens_are_named(gff_tokenizer):
    from core.features import Gene

    with pytest.raises(TokenizerError, match="<odd_gene>.*append_tk"):
        target_ids([Gene(0, 9, "+", "odd_gene")], gff_tokenizer, NumberCoordinates())


def test_dna_tokens_longer_than_the_offsets_are_refused(dnabert_tokenizer_dir, tmp_path):
    shutil.copytree(dnabert_tokenizer_dir, tmp_path / "tk")
    path = tmp_path / "tk" / "tokenizer.json"
    spec = json.loads(path.read_text())
    spec["model"]["vocab"]["A" * (MAX_OFFSET + 1)] = len(spec["model"]["vocab"])
    path.write_text(json.dumps(spec))
    with pytest.raises(TokenizerError, match="MAX_OFFSET"):
        load_dnabert_tokenizer(tmp_path / "tk")


# ---------------------------------------------------------------- command line


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli(["--help"])
    assert exit_.value.code == 0 and "append_tk" in capsys.readouterr().out


def test_cli_init_and_append_are_idempotent(dnabert_tokenizer_dir, tmp_path, capsys):
    tokens = tmp_path / "tokens.txt"
    assert cli(["init_tk", str(tokens), "--extra_types", "my_RNA"]) == 0
    listed = tokens.read_text().split()
    assert "<my_RNA>" in listed and set(VOCAB) <= set(listed)

    json_path = tmp_path / "tokenizer.json"
    shutil.copy(dnabert_tokenizer_dir / "tokenizer.json", json_path)
    assert cli(["append_tk", str(tokens), str(json_path)]) == 0
    first = Tokenizer.from_file(str(json_path)).get_vocab(with_added_tokens=True)
    assert [first[t] for t in listed] == list(range(4096, 4096 + len(listed)))  # order preserved
    assert cli(["append_tk", str(tokens), str(json_path)]) == 0
    assert Tokenizer.from_file(str(json_path)).get_vocab(with_added_tokens=True) == first
    assert "added 0 of" in capsys.readouterr().out

    directory = tmp_path / "dir"
    shutil.copytree(dnabert_tokenizer_dir, directory)
    assert cli(["append_tk", str(tokens), str(directory)]) == 0
    assert AutoTokenizer.from_pretrained(directory).get_vocab() == first


def test_cli_reports_a_bad_token_file_line(dnabert_tokenizer_dir, tmp_path, capsys):
    bad = write_text(tmp_path / "bad.txt", "# comment\n<ok>\n\ngene with spaces\n")
    assert cli(["append_tk", str(bad), str(dnabert_tokenizer_dir / "tokenizer.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"python -m tokenization: error: {bad}:4:") and "\n" not in err


def test_cli_build_trains_a_bpe_from_fasta(tmp_path):
    fasta = write_text(
        tmp_path / "g.fa", f">a\n{random_dna(20_000, seed=1)}\n>b\n{random_dna(5000, seed=2).lower()}\n"
    )
    assert cli(["build_tk", str(tmp_path / "tk"), "--fasta", str(fasta), "--vocab_size", "300"]) == 0
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "tk")
    assert len(tokenizer) == 300 + len(VOCAB)
    assert tokenizer.convert_ids_to_tokens(list(range(5))) == list(SPECIAL_TOKENS)
    assert tokenizer("ACGT").input_ids[0] == tokenizer.cls_token_id


def test_cli_resize_model_keeps_old_rows_and_ties_the_head(dnabert_tokenizer_dir, gff_tokenizer, tmp_path):
    config = BertConfig(
        vocab_size=4096, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    torch.manual_seed(0)
    model = BertForMaskedLM(config)
    model.save_pretrained(tmp_path / "model")
    old = model.get_input_embeddings().weight.detach().clone()
    gff_tokenizer.save_pretrained(tmp_path / "tk")

    assert cli(["resize_model", str(tmp_path / "model"), str(tmp_path / "tk")]) == 0
    resized = BertForMaskedLM.from_pretrained(tmp_path / "model")
    weight = resized.get_input_embeddings().weight.detach()
    assert weight.shape == (len(gff_tokenizer), 16) and resized.config.vocab_size == len(gff_tokenizer)
    assert torch.equal(weight[:4096], old)
    assert torch.allclose(weight[4096:], old.mean(0).expand(len(gff_tokenizer) - 4096, -1), atol=1e-3)
    assert resized.get_output_embeddings().weight.data_ptr() == weight.data_ptr()
    # Resizing again to the same tokenizer changes nothing.
    assert cli(["resize_model", str(tmp_path / "model"), str(tmp_path / "tk")]) == 0
    assert torch.equal(
        BertForMaskedLM.from_pretrained(tmp_path / "model").get_input_embeddings().weight, weight
    )


def test_cli_resize_model_on_a_gffmoe_checkpoint(tmp_path):
    """append_tk + resize_model on a saved GFF-MoE: old rows and experts untouched, the head tied, the
    directory's tokenizer updated, and the model still loads and generates through its own code."""
    from transformers import AutoModelForSeq2SeqLM

    from tests.fixtures.training import make_model, make_tokenizer

    make_tokenizer(tmp_path / "tk")
    model_dir = make_model(tmp_path / "model", tmp_path / "tk")
    before = AutoModelForSeq2SeqLM.from_pretrained(model_dir, trust_remote_code=True)
    old_rows = before.get_input_embeddings().weight.detach().clone()
    (tmp_path / "new_tokens.txt").write_text("<snoRNA_gene>\n<Y_RNA>\n")
    assert cli(["append_tk", str(tmp_path / "new_tokens.txt"), str(tmp_path / "tk")]) == 0
    assert cli(["resize_model", str(model_dir), str(tmp_path / "tk")]) == 0

    after = AutoModelForSeq2SeqLM.from_pretrained(model_dir, trust_remote_code=True)
    weight = after.get_input_embeddings().weight.detach()
    assert weight.shape[0] == len(old_rows) + 2 == after.config.vocab_size
    assert torch.equal(weight[: len(old_rows)], old_rows)
    assert after.get_output_embeddings().weight.data_ptr() == after.get_input_embeddings().weight.data_ptr()
    before_state, after_state = before.state_dict(), after.state_dict()
    for name, tensor in before_state.items():
        if tensor.shape == after_state[name].shape:
            assert torch.equal(tensor, after_state[name]), name
    assert len(AutoTokenizer.from_pretrained(model_dir)) == weight.shape[0]
    # Pointer ids now start after the two new rows, and generation still runs.
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    source = encode_source(tokenizer, random_dna(300, seed=3))
    out = after.generate(
        **{k: torch.tensor([v]) for k, v in source.items()}, max_new_tokens=4, do_sample=False
    )
    assert out.shape[0] == 1


def test_cli_append_takes_bare_feature_types(dnabert_tokenizer_dir, tmp_path, capsys):
    """`bake --extract_tokens` users write new types by hand: `weird_feature` means `<weird_feature>`."""
    tokens = write_text(tmp_path / "new.txt", "weird_feature\n<Y_RNA>\n")
    json_path = tmp_path / "tokenizer.json"
    shutil.copy(dnabert_tokenizer_dir / "tokenizer.json", json_path)
    assert cli(["append_tk", str(tokens), str(json_path)]) == 0
    vocab = Tokenizer.from_file(str(json_path)).get_vocab(with_added_tokens=True)
    assert vocab["<weird_feature>"] == 4096 and vocab["<Y_RNA>"] == 4097 and "weird_feature" not in vocab
    assert "added 2 of 2" in capsys.readouterr().out
