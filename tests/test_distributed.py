"""Distributed training on CPU through the real launchers (gloo on loopback), and exact resumption."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer

import train
from annotation.windows import tile
from hub_code import save_hub_code
from tests.fixtures.genomes import write_text
from tests.fixtures.training import (
    REPO,
    baked_tiny_genome,
    cli_env,
    make_model,
    run_cli,
    tiny_checkpoint,
    tiny_model_dir,
    write_orf_dataset,
)
from tests.test_annotate import assembly, gt_valid, steered_model

__all__ = ["baked_tiny_genome", "tiny_checkpoint", "tiny_model_dir"]  # fixtures used here

LAUNCH_TIMEOUT = 300
# What differs between two evaluations of the same windows: when and how fast they ran.
TIMINGS = {"epoch", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "eval_model_preparation_time"}  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def train_argv(model_dir, dataset_dir, output_dir, *extra) -> list[str]:
    return [
        "--model_name_or_path", str(model_dir), "--dataset_dir", str(dataset_dir), "--output_dir", str(output_dir),
        "--per_device_train_batch_size", "2", "--learning_rate", "3e-3", "--logging_steps", "1",
        "--report_to", "none", "--seed", "0", "--dataloader_num_workers", "0", "--max_source_tokens", "256",
        "--max_target_tokens", "48", *extra,
    ]  # fmt: skip


def final_weights(directory) -> dict[str, torch.Tensor]:
    return load_file(directory / "model.safetensors")


def train_losses(directory) -> list[float]:
    state = json.loads((directory / "trainer_state.json").read_text())
    return [log["loss"] for log in state["log_history"] if "loss" in log]


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path, tiny_checkpoint, baked_tiny_genome):
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "accelerate_configs/cpu_ddp.yaml",
               "--main_process_port", str(free_port()), "train.py",
               *train_argv(tiny_checkpoint, baked_tiny_genome, out, "--max_steps", "12", "--save_steps", "6")]  # fmt: skip
    result = run_cli(command, timeout=LAUNCH_TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]

    results = json.loads((out / "train_results.json").read_text())
    assert results["world_size"] == 2  # really two processes, not one that says so
    assert results["replicas_identical"] == 1.0  # every rank ends with the same weights
    assert sorted(p.name for p in (out / "checkpoint-12").glob("rng_state_*.pth")) == [
        "rng_state_0.pth",
        "rng_state_1.pth",
    ]
    assert (out / "checkpoint-6" / "model.safetensors").is_file()
    losses = train_losses(out)
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3  # it learns
    # A per-rank mean loss, not multiplied by the world size (an untrained model scores about log(#classes)).
    assert losses[0] < math.log(2 * len(AutoTokenizer.from_pretrained(tiny_checkpoint))) + 1


@pytest.mark.slow
def test_two_nodes_on_loopback_through_launch_distributed(tmp_path, tiny_checkpoint):
    """Two nodes of one process each; then the validation windows are scored across both exactly as one
    process scores them: 6 windows in batches of 2 make a last round in which the second process repeats
    the first two windows (accelerate's even batches), which neither the metrics nor the track's counts may see."""
    out, port = tmp_path / "multinode", free_port()
    model = make_model(tmp_path / "model", tiny_checkpoint.parent / "tokenizer", track_loss_weight=1.0)
    # The track calls every + base "cds0": its precision is then the share of such bases in the windows
    # counted, which any repeated window moves.
    weights = load_file(model / "model.safetensors")
    weights["track_head.out.bias"][1] += 20
    save_file(weights, model / "model.safetensors", {"format": "pt"})
    dataset = write_orf_dataset(tmp_path / "orfs", n_validation=6)
    args = train_argv(model, dataset, out, "--max_steps", "4", "--save_strategy", "no",
                      "--per_device_eval_batch_size", "2")  # fmt: skip
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "NNODES": "2", "GPUS_PER_NODE": "1",
           "PYTHON": sys.executable}  # fmt: skip
    nodes = [
        subprocess.Popen(
            ["./accelerate_configs/launch_distributed.sh", *args],
            cwd=REPO,
            env=cli_env(**env, NODE_RANK=str(rank)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (0, 1)
    ]
    try:
        logs = [node.communicate(timeout=LAUNCH_TIMEOUT)[0] for node in nodes]
    finally:
        for node in nodes:
            node.kill()
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(log[-2000:] for log in logs)
    assert "node 1/2, 1 processes per node" in logs[1]
    results = json.loads((out / "train_results.json").read_text())
    assert results["world_size"] == 2 and results["replicas_identical"] == 1.0

    alone = tmp_path / "alone"
    evaluate = train_argv(out, dataset, alone, "--do_eval", "--per_device_eval_batch_size", "2")
    assert train.main(evaluate) == 0
    scores = [
        {k: v for k, v in json.loads((run / "eval_results.json").read_text()).items() if k not in TIMINGS}
        for run in (out, alone)
    ]
    assert "eval_record_f1" in scores[0] and 0 < scores[0]["eval_track_cds0_precision"] < 1
    assert scores[0] == pytest.approx(scores[1], rel=1e-6)


@pytest.mark.slow
def test_resume_from_checkpoint_matches_an_uninterrupted_run(tmp_path, tiny_checkpoint):
    torch.set_num_threads(1)
    dataset = write_orf_dataset(tmp_path / "data", n_train=24, n_validation=0, length=400)
    schedule = ["--max_steps", "8", "--save_steps", "4", "--save_total_limit", "3"]
    straight = tmp_path / "straight"
    assert train.main(train_argv(tiny_checkpoint, dataset, straight, "--use_cpu", *schedule)) == 0

    # A second run stops after checkpoint-4 (it is the first run's state at step 4) and resumes from it.
    resumed = tmp_path / "resumed"
    resume = ["--resume_from_checkpoint", str(straight / "checkpoint-4")]
    assert train.main(train_argv(tiny_checkpoint, dataset, resumed, "--use_cpu", *schedule, *resume)) == 0

    expected, actual = final_weights(straight), final_weights(resumed)
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[k], actual[k]) for k in expected)
    # Same batches at steps 5-8 (the data was not replayed from the start); the checkpoint's history is kept.
    assert train_losses(resumed) == train_losses(straight) and len(train_losses(straight)) == 8
    assert not torch.equal(
        final_weights(straight / "checkpoint-4")["shared.weight"], expected["shared.weight"]
    )


@pytest.mark.slow
def test_annotate_on_two_cpu_processes_writes_what_one_process_writes(tmp_path, tiny_model_dir):
    """`accelerate launch annotate.py`: the processes decode whole batches in turn, the first one writes."""
    model, tokenizer = steered_model(tiny_model_dir)  # so that there are genes to get right
    model_dir = tmp_path / "steered"
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    save_hub_code(model_dir)
    contigs = assembly(3000, tiny=12)
    windows = [w for seqid, dna in contigs.items() for w in tile(seqid, dna, 600, 150)]
    assert (
        math.ceil(len(windows) / 3) % 2 == 1
    )  # an odd number of batches: one process idles in the last round
    fasta = write_text(tmp_path / "asm.fa", "".join(f">{k}\n{v}\n" for k, v in contigs.items()))
    argv = ["annotate.py", "--model", str(model_dir), "--fasta", str(fasta), "--window_size", "600",
            "--overlap", "150", "--max_new_tokens", "24", "--batch_size", "3", "--min_coding_length", "60",
            "--quiet"]  # fmt: skip
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "accelerate_configs/cpu_ddp.yaml",
              "--main_process_port", str(free_port())]  # fmt: skip
    one = run_cli(
        [sys.executable, *argv, "--workers", "1", "--out", str(tmp_path / "one.gff3")], timeout=LAUNCH_TIMEOUT
    )
    two = run_cli([*launch, *argv, "--out", str(tmp_path / "two.gff3")], timeout=LAUNCH_TIMEOUT)
    # annotate.py's own CPU workers (forked, fed batches in order; three of them for the odd last round)
    pooled = run_cli([sys.executable, *argv, "--workers", "3", "--out", str(tmp_path / "pooled.gff3")], timeout=LAUNCH_TIMEOUT)  # fmt: skip
    assert one.returncode == 0 and two.returncode == 0 and pooled.returncode == 0, (one.stderr + two.stderr + pooled.stderr)[-3000:]  # fmt: skip
    assert "; 2 processes" in two.stdout and two.stdout.count("wrote") == 1  # two processes, one writer
    assert "; 1 worker(s)" in one.stderr and "; 3 worker(s)" in pooled.stderr
    expected = (tmp_path / "one.gff3").read_bytes()
    assert expected.count(b"\tgene\t") > 5
    for run in (two, pooled):
        assert f"{len(windows)} windows" in run.stdout
    assert (tmp_path / "two.gff3").read_bytes() == expected
    assert (tmp_path / "pooled.gff3").read_bytes() == expected
    gt_valid(tmp_path / "two.gff3")


# ---------------------------------------------------------------- FSDP (accelerate_configs/fsdp.yaml)


def fsdp_yaml_environment() -> dict[str, str]:
    """The FSDP settings `accelerate launch --config_file accelerate_configs/fsdp.yaml` exports to its processes,
    by accelerate's own parsing and validation of the file."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    args = launch_command_parser().parse_args(
        ["--config_file", str(REPO / "accelerate_configs" / "fsdp.yaml"), "train.py"]
    )
    args, _, _ = _validate_launch_command(args)
    return {
        k: v
        for k, v in prepare_multi_gpu_env(args).items()
        if k.startswith("FSDP_") or k == "ACCELERATE_USE_FSDP"
    }


def test_fsdp_yaml_is_valid_and_wraps_the_encoder_and_decoder_layers(tiny_checkpoint, monkeypatch):
    from accelerate import FullyShardedDataParallelPlugin
    from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy
    from torch.distributed.fsdp import StateDictType
    from transformers import AutoModelForSeq2SeqLM

    for name, value in fsdp_yaml_environment().items():
        monkeypatch.setenv(name, value)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
    assert plugin.activation_checkpointing and plugin.state_dict_type == StateDictType.SHARDED_STATE_DICT
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_checkpoint, trust_remote_code=True)
    wrap = fsdp2_prepare_auto_wrap_policy(plugin, model)
    units = [name for name, module in model.named_modules() if wrap(module)]
    assert units == ["encoder.layers.0", "decoder.layers.0"]  # each layer its own FSDP unit


@pytest.mark.slow
def test_fsdp_on_two_cpu_processes_resumes_bit_identically_and_saves_unsharded(tmp_path, tiny_checkpoint):
    """torch FSDP2 runs on CPU processes (gloo); accelerate 1.15 enables it only on GPUs (on CPU `accelerate
    launch` with fsdp.yaml trains with DDP instead), so tests/fixtures/fsdp_worker.py applies fsdp.yaml's
    settings itself. 6 steps with a sharded checkpoint after 3, then fresh objects resumed from it."""
    from transformers import AutoModelForSeq2SeqLM

    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
               str(free_port()), "tests/fixtures/fsdp_worker.py", str(tiny_checkpoint), str(tmp_path), "6", "3"]  # fmt: skip
    result = subprocess.run(
        command, cwd=REPO, env=cli_env(**fsdp_yaml_environment()), capture_output=True, text=True,
        timeout=LAUNCH_TIMEOUT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("FSDP units encoder.layers.0, decoder.layers.0") == 2
    assert len(list((tmp_path / "checkpoint").glob("*.distcp"))) == 2  # one shard file per rank

    straight, resumed = (
        load_file(tmp_path / "straight.safetensors"),
        load_file(tmp_path / "resumed.safetensors"),
    )
    assert straight.keys() == resumed.keys() and all(torch.equal(straight[k], resumed[k]) for k in straight)
    initial = load_file(tiny_checkpoint / "model.safetensors")
    assert not torch.equal(initial["shared.weight"], straight["shared.weight"])  # it trained
    hub = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "hub", trust_remote_code=True)
    weights = hub.state_dict()
    assert all(torch.equal(weights[k], resumed[k]) for k in resumed)
    assert (tmp_path / "hub" / "pipeline_gffmoe.py").is_file() and (
        tmp_path / "hub" / "tokenizer.json"
    ).is_file()
