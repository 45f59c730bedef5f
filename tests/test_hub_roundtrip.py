"""save_pretrained -> a fresh process, in a copied directory, with the repository NOT importable."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import torch

from tests.test_modeling import VOCAB, source_batch, tiny_model

FRESH_PROCESS_SCRIPT = textwrap.dedent(
    """
    import json, sys, torch
    from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM
    model_dir, inputs = sys.argv[1], json.load(open(sys.argv[2]))
    batch = {k: torch.tensor(v) for k, v in inputs.items()}
    try:
        import modeling_gffmoe  # noqa: F401
        sys.exit("the repository must not be importable here")
    except ImportError:
        pass
    results = {"config": type(AutoConfig.from_pretrained(model_dir, trust_remote_code=True)).__name__}
    for auto in (AutoModel, AutoModelForSeq2SeqLM):
        model = auto.from_pretrained(model_dir, trust_remote_code=True).eval()
        out = model.generate(**batch, max_new_tokens=8, do_sample=False, eos_token_id=None)
        results[auto.__name__] = {"class": type(model).__name__, "tokens": out.tolist()}
    print(json.dumps(results))
    """
)


def test_saved_model_loads_and_generates_in_a_fresh_process(tmp_path):
    model = tiny_model(seed=5)
    saved = tmp_path / "saved"
    model.save_pretrained(saved)
    files = set(os.listdir(saved))
    assert {"config.json", "model.safetensors", "generation_config.json"} <= files
    assert {"modeling_gffmoe.py", "configuration_gffmoe.py"} <= files
    auto_map = json.loads((saved / "config.json").read_text())["auto_map"]
    assert set(auto_map) == {"AutoConfig", "AutoModel", "AutoModelForSeq2SeqLM"}

    batch = source_batch()
    expected = model.generate(**batch, max_new_tokens=8, do_sample=False, eos_token_id=None).tolist()
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps({k: v.tolist() for k, v in batch.items()}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    copied = shutil.copytree(saved, elsewhere / "model_copy")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS_SCRIPT, str(copied), str(inputs)],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["config"] == "GffMoeConfig"
    for auto in ("AutoModel", "AutoModelForSeq2SeqLM"):
        assert loaded[auto]["class"] == "GffMoeForConditionalGeneration"
        assert loaded[auto]["tokens"] == expected


def test_reload_in_process_gives_identical_logits(tmp_path):
    from modeling_gffmoe import GffMoeForConditionalGeneration

    model = tiny_model(seed=6)
    model.save_pretrained(tmp_path)
    reloaded = GffMoeForConditionalGeneration.from_pretrained(tmp_path).eval()
    batch = source_batch()
    labels = torch.tensor([[9, VOCAB + 3, 2], [12, 2, 2]])
    torch.testing.assert_close(reloaded(**batch, labels=labels).logits, model(**batch, labels=labels).logits)
    assert reloaded.lm_head.weight.data_ptr() == reloaded.shared.weight.data_ptr()  # still tied
