"""train.py and training/: data preparation, collation, logging, metrics, outputs and argument errors."""

from __future__ import annotations

import json
import os
import random
import re
import sys
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from transformers import AutoConfig, AutoTokenizer, TrainerCallback

import train
from annotation.starts import FEATURES
from core.features import Gene
from dataset_builder.bake import BakeOptions, bake_genome
from tests.fixtures.genes import coding
from tests.fixtures.genomes import write_text
from tests.fixtures.training import (
    baked_tiny_genome,
    cli_env,
    make_model,
    run_cli,
    tiny_checkpoint,
    write_orf_dataset,
)
from tokenization.codec import decode, text_to_genes
from tokenization.coordinates import NumberCoordinates
from tokenization.tokenizer import decode_ids, tokens_to_ids
from tokenization.track import gene_track
from training.data import (
    GffMoeCollator,
    coordinate_scheme,
    load_windows,
    padding_fraction,
    prepare_windows,
    tokenize_window,
)
from training.metrics import AnnotationScorer
from training.synthetic import orf_window
from training.trainer import flat_logs, router_logs

__all__ = ["baked_tiny_genome", "tiny_checkpoint"]  # fixtures used here


def test_collator_pads_every_column_with_its_own_value():
    features = [
        {
            "input_ids": [1, 5, 6, 2],
            "attention_mask": [1, 1, 1, 1],
            "token_offsets": [(0, 0), (0, 3), (3, 7), (0, 0)],
            "labels": [9, 10, 11],
            "length": 7,
        },
        {
            "input_ids": [1, 5, 2],
            "attention_mask": [1, 1, 1],
            "token_offsets": [(0, 0), (0, 4), (0, 0)],
            "labels": [9],
            "length": 4,
        },
    ]
    batch = GffMoeCollator(pad_token_id=3)(features)
    assert set(batch) == {"input_ids", "attention_mask", "token_offsets", "labels"}
    assert batch["input_ids"].tolist() == [[1, 5, 6, 2], [1, 5, 2, 3]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["token_offsets"].shape == (2, 4, 2) and batch["token_offsets"].dtype == torch.long
    assert batch["token_offsets"][1].tolist() == [[0, 0], [0, 4], [0, 0], [0, 0]]
    assert batch["labels"].tolist() == [[9, 10, 11], [9, -100, -100]]
    assert {name: value.item() for name, value in padding_fraction(batch).items()} == pytest.approx(
        {"padding_fraction_source": 1 / 8, "padding_fraction_target": 2 / 6}
    )
    padded = GffMoeCollator(pad_token_id=3, pad_to_multiple_of=8)(features)
    assert padded["input_ids"].shape == (2, 8) and padded["token_offsets"].shape == (2, 8, 2)
    assert padded["labels"].shape == (2, 8) and (padded["labels"][:, 3:] == -100).all()
    # The per-base track (bytes of int8 [bases, 4]) pads with -100 to the batch's longest window.
    tracks = [np.arange(28, dtype=np.int8).reshape(7, 4) % 6, np.ones((4, 4), dtype=np.int8)]
    with_track = GffMoeCollator(pad_token_id=3)(
        [{**f, "track": t.tobytes()} for f, t in zip(features, tracks, strict=True)]
    )
    assert with_track["track_labels"].shape == (2, 7, 4) and with_track["track_labels"].dtype == torch.long
    assert with_track["track_labels"][0].tolist() == tracks[0].tolist()
    assert (with_track["track_labels"][1, 4:] == -100).all() and (
        with_track["track_labels"][1, :4] == 1
    ).all()


def test_prepared_labels_decode_back_to_the_stored_genes(tmp_path, tiny_checkpoint):
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    windows, _ = load_windows(
        write_orf_dataset(tmp_path / "data", n_train=6, n_validation=1), ["prokaryotes"]
    )
    for scheme_name in ("pointer", "number"):
        prepared = prepare_windows(windows, tokenizer, scheme_name)
        assert set(prepared.column_names) == {
            "input_ids",
            "attention_mask",
            "token_offsets",
            "labels",
            "track",
            "length",
            "target_truncated",
        }
        for window, row in zip(windows, prepared, strict=True):
            scheme = coordinate_scheme(scheme_name, row["token_offsets"], len(tokenizer))
            decoded = decode_ids(row["labels"], tokenizer, scheme)
            assert not decoded.errors and decoded.genes == text_to_genes(window["target"]).genes
            track = np.frombuffer(row["track"], dtype=np.int8).reshape(-1, 4)  # the same genes, per base
            np.testing.assert_array_equal(track, gene_track(decoded.genes, len(window["sequence"])))
            assert row["length"] == len(row["input_ids"]) + len(row["labels"])
            assert any(i >= len(tokenizer) for i in row["labels"]) == (scheme_name == "pointer")


def test_hints_column_reaches_the_encoder_and_leaves_the_labels_alone(tiny_checkpoint):
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    window = orf_window(random.Random(5), "h", 600, (90, 300))
    hinted = {**window, "hints": window["target"]}  # the baker's hint text: a subset of the true genes
    plain_row = tokenize_window(window, tokenizer, "pointer")
    row = tokenize_window(hinted, tokenizer, "pointer")
    n = len(plain_row["input_ids"])
    assert row["input_ids"][:n] == plain_row["input_ids"]
    hint_ids = tokens_to_ids(tokenizer, ["[HIT]", *window["target"].split()]) + [tokenizer.sep_token_id]
    assert row["input_ids"][n:] == hint_ids
    assert row["token_offsets"][n:] == [(0, 0)] * len(hint_ids)
    assert row["labels"] == plain_row["labels"]
    assert tokenize_window({**window, "hints": ""}, tokenizer, "pointer") == plain_row


def test_baked_hints_are_read_by_the_encoder_of_their_window(tmp_path, tiny_genome, tiny_checkpoint):
    options = BakeOptions(
        taxon="prokaryotes", limit=1500, val_fraction=0.0, test_fraction=0.0, hint_ratio=1.0
    )
    bake_genome("tiny", *tiny_genome, options, tmp_path / "dataset", progress=False)
    windows, _ = load_windows(tmp_path / "dataset", ["prokaryotes"])
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    hit, sep = tokenizer.convert_tokens_to_ids(["[HIT]", "[SEP]"])
    prepared = prepare_windows(windows, tokenizer, "number")
    assert any(window["n_genes"] for window in windows)
    for window, row in zip(windows, prepared, strict=True):
        if not window["n_genes"]:
            assert hit not in row["input_ids"]
            continue
        start = row["input_ids"].index(hit)
        assert row["input_ids"][start - 1] == sep and row["input_ids"][-1] == sep
        hint_tokens = tokenizer.convert_ids_to_tokens(row["input_ids"][start:-1])
        assert decode(hint_tokens, NumberCoordinates()).genes == text_to_genes(window["target"]).genes
        assert (
            decode_ids(row["labels"], tokenizer, NumberCoordinates()).genes
            == text_to_genes(window["target"]).genes
        )


def test_truncated_source_cuts_genes_at_the_last_seen_base(tmp_path, tiny_checkpoint):
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    windows, _ = load_windows(
        write_orf_dataset(tmp_path / "data", n_train=8, n_validation=1), ["prokaryotes"]
    )
    prepared = prepare_windows(windows, tokenizer, "pointer", max_source_tokens=40, max_target_tokens=9)
    for window, row in zip(windows, prepared, strict=True):
        assert len(row["input_ids"]) <= 40 and len(row["labels"]) <= 9
        covered = max(end for _, end in row["token_offsets"])
        gene = text_to_genes(window["target"]).genes[0]
        scheme = coordinate_scheme("pointer", row["token_offsets"], len(tokenizer))
        expected = gene.clip(0, covered - 1)
        if row["target_truncated"]:
            continue
        decoded = decode_ids(row["labels"], tokenizer, scheme).genes
        assert decoded == ([expected] if expected is not None else [])
        if expected is not None and gene.end >= covered:
            assert decoded[0].open_right


def test_router_logs_are_three_statistics_per_layer_not_one_per_expert():
    outputs = SimpleNamespace(
        aux_loss=torch.tensor(1.5),
        z_loss=torch.tensor(0.25),
        router_entropy=torch.tensor([0.5, 0.75]),
        expert_load=torch.tensor([[0.25, 0.25, 0.5, 0.0], [1.0, 0.0, 0.0, 0.0]]),
    )
    logs = flat_logs(router_logs(outputs))
    assert logs["router/aux_loss"] == 1.5 and logs["router/z_loss"] == 0.25
    assert logs["router/router_entropy"] == pytest.approx(0.625)
    per_layer = {key for key in logs if key.endswith("_layer1")}
    assert per_layer == {f"router/expert_load_{s}_layer1" for s in ("min", "max", "entropy")}
    assert len(logs) == 3 + 3 * 2  # no key per expert
    assert logs["router/expert_load_min_layer0"] == 0.0 and logs["router/expert_load_max_layer0"] == 0.5
    assert logs["router/expert_load_entropy_layer0"] == pytest.approx(1.5 * np.log(2))
    assert logs["router/expert_load_entropy_layer1"] == 0.0  # everything to one expert
    assert router_logs(SimpleNamespace()) == {}


class _HostSyncs(TrainerCallback):
    """Records, per training step, the training/ code that called `.item()` / `.tolist()` (each waits for the
    accelerator). The eager expert dispatch's own `.tolist()` (rows per expert) is the model's, not logging's."""

    def __init__(self, monkeypatch):
        self.callers, self.per_step = [], {}
        for method in ("item", "tolist"):
            monkeypatch.setattr(torch.Tensor, method, self._recorded(getattr(torch.Tensor, method)))

    def _recorded(self, original):
        def method(tensor, *args):
            caller = sys._getframe(1).f_code.co_filename
            if f"{os.sep}training{os.sep}" in caller:
                self.callers.append(caller)
            return original(tensor, *args)

        return method

    def on_step_begin(self, args, state, control, **kwargs):
        self.callers.clear()

    def on_step_end(self, args, state, control, **kwargs):
        self.per_step[state.global_step] = list(self.callers)


def test_training_steps_move_no_statistic_to_the_host_between_logs(tmp_path, tiny_checkpoint, monkeypatch):
    """Statistics are summed as tensors and synced once per logging step, not at every step."""
    torch.set_num_threads(1)
    dataset = write_orf_dataset(tmp_path / "data", n_train=16, n_validation=0, length=300)
    syncs = _HostSyncs(monkeypatch)
    args = train.parse_args(
        _train_args(
            tiny_checkpoint,
            dataset,
            tmp_path / "run",
            "--max_steps",
            "4",
            "--logging_steps",
            "4",
            "--save_strategy",
            "no",
        )  # fmt: skip
    )
    train.train(*args, callbacks=[syncs])
    assert syncs.per_step == {1: [], 2: [], 3: [], 4: []}
    state = json.loads((tmp_path / "run" / "trainer_state.json").read_text())
    assert "router/expert_load_max_layer0" in state["log_history"][0]


def test_training_prints_step_loss_tokens_per_second_and_time_left(tmp_path, tiny_checkpoint, capsys):
    """Not a terminal (a log file, the demo's pipe): one line per log, no progress bar, no dict of every key."""
    torch.set_num_threads(1)
    dataset = write_orf_dataset(tmp_path / "data", n_train=16, n_validation=0, length=300)
    argv = _train_args(
        tiny_checkpoint, dataset, tmp_path / "run", "--max_steps", "4", "--save_strategy", "no"
    )
    assert train.main(argv) == 0
    out = capsys.readouterr().out
    lines = re.findall(
        r"^step (\d+)/4  loss \d+\.\d{4}  [\d,]+ tokens/s  \d+m \d\ds left$", out, re.MULTILINE
    )
    assert lines == ["2", "4"]  # --logging_steps 2
    assert "router/" not in out and "%|" not in out


def test_scorer_counts_exact_matches_only():
    reference = [coding(10, 99), coding(200, 299, "-")]
    scorer = AnnotationScorer()
    scorer.add(
        reference, [coding(10, 99), coding(200, 298, "-")]
    )  # minus strand: right stop (left), wrong start
    scorer.add([Gene(5, 16, "+")], [Gene(5, 16, "+")])  # a non-coding record, exactly right
    result = scorer.result()
    assert result["gene_exact_f1"] == pytest.approx(0.5)
    assert result["gene_3prime_f1"] == pytest.approx(1.0)
    assert result["record_f1"] == pytest.approx(2 * 2 / (3 + 3))
    assert result["window_exact"] == pytest.approx(0.5)
    assert result["start_exact"] == 1 and result["end_exact"] == pytest.approx(2 / 3)
    assert result["end_error_bp"] == pytest.approx(1 / 3) and result["start_error_bp"] == 0


def _train_args(model_dir, dataset_dir, output_dir, *extra):
    return [
        "--model_name_or_path", str(model_dir), "--dataset_dir", str(dataset_dir), "--output_dir", str(output_dir),
        "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4", "--learning_rate", "3e-3",
        "--logging_steps", "2", "--report_to", "none", "--use_cpu", "--seed", "0", "--dataloader_num_workers", "0",
        *extra,
    ]  # fmt: skip


def test_the_recorded_window_is_the_bake_limit_not_a_long_gene_window():
    import datasets

    lengths = [3000] * 12 + [2100, 1800, 2950] * 2 + [9234]  # one window holds a long gene whole
    windows = datasets.Dataset.from_dict(
        {"sequence": ["A" * n for n in lengths], "seqid": ["s"] * len(lengths)}
    )
    assert train.typical_window(windows) == 3000
    assert train.typical_window(windows.select([2, 12, 13])) == 3000  # a selection's own windows
    assert train.typical_window(windows.select([13])) == 1800


def test_train_logs_router_stats_evaluates_and_writes_a_hub_ready_directory(tmp_path, tiny_checkpoint):
    torch.set_num_threads(1)
    dataset = write_orf_dataset(tmp_path / "data", n_train=16, n_validation=4, length=400)
    out = tmp_path / "run"
    argv = _train_args(tiny_checkpoint, dataset, out, "--max_steps", "6", "--save_steps", "3", "--save_total_limit", "1",
                       "--eval_strategy", "steps", "--eval_steps", "6", "--generation_max_length", "20")  # fmt: skip
    assert train.main(argv) == 0

    state = json.loads((out / "trainer_state.json").read_text())
    train_logs = [log for log in state["log_history"] if "loss" in log]
    assert train_logs and all(
        "router/aux_loss" in log and "padding_fraction_source" in log for log in train_logs
    )
    assert all(0 <= log["padding_fraction_target"] < 1 for log in train_logs)
    router_keys = {key for key in train_logs[0] if key.startswith("router/")}
    assert router_keys == {"router/aux_loss", "router/z_loss", "router/router_entropy"} | {
        f"router/expert_load_{s}_layer0" for s in ("min", "max", "entropy")
    }  # the tiny model has one decoder layer
    eval_logs = [log for log in state["log_history"] if "eval_record_f1" in log]
    assert eval_logs and {"eval_loss", "eval_gene_exact_f1", "eval_exon_f1", "eval_window_exact"} <= set(
        eval_logs[-1]
    )
    results = json.loads((out / "train_results.json").read_text())
    assert results["world_size"] == 1 and results["replicas_identical"] == 1.0

    # save_total_limit keeps one checkpoint; the final directory is a Hub repository.
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-6"]
    for name in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
                 "configuration_gffmoe.py", "modeling_gffmoe.py", "README.md"):  # fmt: skip
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert {"AutoConfig", "AutoModel", "AutoModelForSeq2SeqLM"} <= set(config["auto_map"])
    assert config["training_window_bp"] == 400  # annotation's default window, and the card's
    assert config["training_taxa"] == ["prokaryotes"]  # annotation's default taxon
    # The start scorer, fitted on the training genes (tests/test_starts.py), saved for annotation.
    assert set(config["start_weights"]) == set(FEATURES) and any(config["start_weights"].values())
    assert "a start scorer fitted on the training genes" in (out / "README.md").read_text()
    assert "(window 400 bp;" in (out / "README.md").read_text()
    front_matter = yaml.safe_load((out / "README.md").read_text().split("---")[1])
    assert front_matter["library_name"] == "transformers" and front_matter["pipeline_tag"]
    assert {"genomics", "gene-annotation", "gff3", "dnabert-2", "mixture-of-experts"} <= set(
        front_matter["tags"]
    )
    assert "datasets" not in front_matter  # a local folder is no Hub dataset id
    assert "gene_exact_f1" in front_matter["metrics"]
    card_metrics = {m["type"]: m["value"] for m in front_matter["model-index"][0]["results"][0]["metrics"]}
    assert card_metrics["gene_exact_f1"] == pytest.approx(eval_logs[-1]["eval_gene_exact_f1"], abs=1e-4)


def test_track_head_trains_logs_its_loss_and_is_scored_per_class(tmp_path, tiny_checkpoint):
    torch.set_num_threads(1)
    model_dir = make_model(tmp_path / "model", tiny_checkpoint.parent / "tokenizer", track_loss_weight=1.0)
    dataset = write_orf_dataset(tmp_path / "data", n_train=8, n_validation=2, length=400)
    out = tmp_path / "run"
    argv = _train_args(model_dir, dataset, out, "--max_steps", "3", "--save_strategy", "no",
                       "--eval_strategy", "steps", "--eval_steps", "3", "--generation_max_length", "12")  # fmt: skip
    assert train.main(argv) == 0
    state = json.loads((out / "trainer_state.json").read_text())
    train_logs = [log for log in state["log_history"] if "loss" in log]
    assert train_logs and all(log["track/loss"] > 0 for log in train_logs)
    eval_log = next(log for log in state["log_history"] if "eval_record_f1" in log)
    for name in ("cds0", "cds1", "cds2", "start_codon", "stop_codon"):
        assert (
            0 <= eval_log[f"eval_track_{name}_precision"] <= 1
            and 0 <= eval_log[f"eval_track_{name}_recall"] <= 1
        )
    assert "eval_track_intergenic_precision" not in eval_log  # the background class is not scored
    from safetensors.torch import load_file

    assert any(key.startswith("track_head.") for key in load_file(out / "model.safetensors"))


def test_training_without_an_accelerator_pins_no_memory_and_says_nothing_of_it(tmp_path, tiny_checkpoint):
    """Pinned memory only speeds copies to an accelerator: without one torch warned at every DataLoader."""
    dataset = write_orf_dataset(tmp_path / "data", n_train=4, n_validation=2, length=300)
    argv = _train_args(tiny_checkpoint, dataset, tmp_path / "run", "--max_steps", "1", "--save_strategy", "no",
                       "--generation_max_length", "8")  # fmt: skip
    argv.remove("--use_cpu")  # it turns pinning off in transformers itself; a user of a CPU machine omits it
    assert train.parse_args(argv)[2].dataloader_pin_memory is torch.accelerator.is_available()
    assert train.parse_args([*argv, "--dataloader_pin_memory", "true"])[2].dataloader_pin_memory is True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert train.main(argv) == 0
    assert not [w for w in caught if "pin_memory" in str(w.message)]


def test_lora_trains_adapters_and_saves_a_merged_model(tmp_path, tiny_checkpoint):
    torch.set_num_threads(1)
    dataset = write_orf_dataset(tmp_path / "data", n_train=8, n_validation=0, length=300)
    out = tmp_path / "lora"
    argv = _train_args(tiny_checkpoint, dataset, out, "--max_steps", "2", "--save_strategy", "no", "--lora_r", "4",
                       "--lora_target_modules", "q_proj,v_proj")  # fmt: skip
    assert train.main(argv) == 0
    from safetensors.torch import load_file

    before, after = load_file(tiny_checkpoint / "model.safetensors"), load_file(out / "model.safetensors")
    assert set(after) == set(before)  # merged: plain model keys, no lora_A / lora_B left
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("q_proj" in k or "v_proj" in k for k in changed)


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing_dir", "no such dataset directory"),
        ("missing_config", "no dataset config 'plants'"),
        ("unknown_taxon", "unknown taxon 'bacteria'"),
        ("vocab_mismatch", "tokenizer has"),
        ("bad_weights", "--dataset_weights"),
    ],
)
def test_bad_arguments_fail_fast_with_one_line(
    tmp_path, tiny_checkpoint, baked_tiny_genome, capsys, case, message
):
    dataset, model, extra = baked_tiny_genome, tiny_checkpoint, []
    if case == "missing_dir":
        dataset = tmp_path / "nowhere"
    elif case == "missing_config":
        extra = ["--dataset_config", "plants"]
    elif case == "unknown_taxon":
        extra = ["--dataset_config", "bacteria"]
    elif case == "vocab_mismatch":
        other = tmp_path / "other_tokenizer"
        AutoTokenizer.from_pretrained(tiny_checkpoint).save_pretrained(other)
        tokenizer = AutoTokenizer.from_pretrained(other)
        tokenizer.add_tokens(["<extra_type>"])
        tokenizer.save_pretrained(other)
        extra = ["--tokenizer_name_or_path", str(other)]
    elif case == "bad_weights":
        extra = ["--dataset_config", "prokaryotes", "--dataset_weights", "1", "2"]
    assert train.main(_train_args(model, dataset, tmp_path / "out", *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "out").exists()  # failed before any work


def test_cli_exits_2_on_a_missing_dataset(tmp_path, tiny_checkpoint):
    result = run_cli(
        [
            sys.executable,
            "train.py",
            "--model_name_or_path",
            str(tiny_checkpoint),
            "--dataset_dir",
            str(tmp_path / "missing"),
            "--output_dir",
            str(tmp_path / "out"),
        ],  # fmt: skip
        timeout=120,
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(f"train.py: error: {tmp_path / 'missing'}: no such dataset")
    )


def test_arguments_from_a_yaml_file(tmp_path, tiny_checkpoint, baked_tiny_genome):
    config = {"model_name_or_path": str(tiny_checkpoint), "dataset_dir": str(baked_tiny_genome),
              "output_dir": str(tmp_path / "out"), "max_source_tokens": 128, "max_steps": 3, "use_cpu": True}  # fmt: skip
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    model_args, data_args, training_args = train.parse_args([str(path)])
    assert data_args.max_source_tokens == 128 and training_args.max_steps == 3
    assert training_args.train_sampling_strategy == "group_by_length" and training_args.predict_with_generate
    assert model_args.model_name_or_path == str(tiny_checkpoint) and data_args.dataset_config == [
        "prokaryotes"
    ]


def test_rebaked_or_same_named_datasets_never_load_stale_windows(tmp_path):
    # datasets keys a local folder's cache by its basename and card: both cases below used to hit it.
    for root, n in ((tmp_path / "a", 3), (tmp_path / "b", 5), (tmp_path / "b", 4)):
        dataset = write_orf_dataset(root / "data", n_train=n, n_validation=1, length=300)
        windows, _ = load_windows(dataset, ["prokaryotes"])
        assert len(windows) == n


def test_the_model_card_usage_snippet_runs_as_written(tmp_path, tiny_checkpoint):
    """The card's Python block, with its PATH_OR_REPO filled in, in a fresh process outside the repository."""
    import shutil
    import subprocess

    from training.model_card import write_model_card

    model_dir = shutil.copytree(tiny_checkpoint, tmp_path / "model")
    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=True)
    args = SimpleNamespace(
        max_steps=1, num_train_epochs=1, learning_rate=1e-3, per_device_train_batch_size=1, seed=0
    )
    card = write_model_card(
        model_dir,
        base_model="b",
        datasets=["prokaryotes"],
        dataset_dir="d",
        metrics={},
        config=config,
        training_args=args,
    ).read_text()
    snippet = card.split("```python\n")[1].split("```")[0].replace("PATH_OR_REPO", str(model_dir))
    script = write_text(tmp_path / "usage.py", snippet + "print('generated', ids.shape)\n")
    env = {k: v for k, v in cli_env().items() if k != "PYTHONPATH"}  # the model directory alone
    done = subprocess.run(  # stdin closed: nothing may ask whether to run the model's code
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert "[y/N]" not in done.stdout + done.stderr
    assert "##gff-version 3" in done.stdout and "generated torch.Size([1," in done.stdout


def test_the_model_card_says_what_the_model_was_trained_on_and_names_no_local_path(tmp_path, tiny_genome):
    """Species trained on and held out, label source, results as model-index: what a Hub user reads."""
    import re

    from huggingface_hub import ModelCard

    from configuration_gffmoe import GffMoeConfig
    from training.model_card import add_held_out_scores, write_model_card

    dataset = tmp_path / "dataset"
    options = BakeOptions(
        taxon="prokaryotes", limit=1500, val_fraction=0.0, test_fraction=0.0, holdout=("bsub",)
    )
    for species in ("ecoli", "bsub"):
        bake_genome(species, *tiny_genome, options, dataset, progress=False)
    config = GffMoeConfig(
        vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, num_experts=1, moe_top_k=1
    )
    args = SimpleNamespace(
        max_steps=5, num_train_epochs=1, learning_rate=1e-3, per_device_train_batch_size=2, seed=0
    )
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    write_model_card(
        model_dir, base_model=str(tmp_path / "init"), datasets=["prokaryotes"], dataset_dir=str(dataset),
        metrics={"eval_gene_exact_f1": 0.25}, config=config, training_args=args,
    )  # fmt: skip
    level = {"f1": 0.5}
    scores = {name: dict.fromkeys(["nucleotide", "exon", "gene", "gene_3prime", "gene_exact"], level)
              for name in ("GFF-MoE", "Prodigal")}  # fmt: skip
    path = add_held_out_scores(model_dir, sequence="tiny ctg1:1-2,000, held out", scores=scores)
    text = path.read_text()
    assert str(tmp_path) not in text and not re.search(r"(^|[\s`(])/(tmp|home|work|root)\b", text)

    card = ModelCard.load(path)
    facts = card.data.gffmoe
    assert facts["training_species"] == ["ecoli"] and facts["held_out_species"] == ["bsub"]
    assert facts["labels"] == ["reference annotation (GFF3/GTF)"] and facts["softmasking"] is False
    assert facts["taxa"] == ["prokaryotes"] and facts["genetic_code"] == {"prokaryotes": 11}
    assert card.data.base_model is None and card.data.datasets is None  # local paths, not Hub ids
    results = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert results[("validation", "gene_exact_f1")] == 0.25 and results[("test", "gene_3prime_f1")] == 0.5
    assert facts["baselines"]["tiny ctg1:1-2,000, held out"]["Prodigal"]["gene_exact_f1"] == 0.5
    assert "# GFF-MoE gene annotator: prokaryotes" in text and "dense decoder" in text
    assert "| gene 3' F1 | 0.5 | 0.5 |" in text  # the model beside the baseline

    hub = write_model_card(
        model_dir, base_model="you/gffmoe-prok", datasets=["prokaryotes"], dataset_dir="you/windows",
        metrics={}, config=config, training_args=SimpleNamespace(**vars(args), hub_model_id="you/gffmoe-tuned"),
    )  # fmt: skip
    card = ModelCard.load(hub)
    assert card.data.base_model == "you/gffmoe-prok" and card.data.datasets == ["you/windows"]
    assert 'pipeline("gff-annotation", model="you/gffmoe-tuned"' in card.text
