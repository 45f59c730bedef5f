"""Decoding tokens/s: GffMoe with the cache vs without, and vs T5ForConditionalGeneration at matched size.

    python bench/generate.py [--hidden 128 --layers 2 --source 512 --new_tokens 64 --batch 2]

The three generators are timed in interleaved rounds (median of --repeats), so background load hits them alike.
Targets: cached >= 3x uncached; close to T5.
"""

import argparse

import torch
from _common import active_parameters, gffmoe, machine, median_times
from transformers import T5Config, T5ForConditionalGeneration


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for name, default in (
        ("hidden", 128),
        ("layers", 2),
        ("heads", 4),
        ("experts", 8),
        ("batch", 2),
        ("source", 512),
        ("new_tokens", 64),
        ("threads", 1),
        ("repeats", 3),
    ):
        parser.add_argument(f"--{name}", type=int, default=default)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine())
    torch.manual_seed(0)
    vocab = 4096
    source = torch.randint(5, vocab, (args.batch, args.source))
    offsets = torch.stack([torch.arange(args.source) * 4, torch.arange(args.source) * 4 + 4], -1).expand(
        args.batch, -1, -1
    )
    model = gffmoe(args.hidden, args.layers, args.heads, 2 * args.hidden, args.experts, 2).eval()
    t5 = T5ForConditionalGeneration(
        T5Config(
            vocab_size=vocab,
            d_model=args.hidden,
            d_kv=args.hidden // args.heads,
            num_heads=args.heads,
            num_layers=args.layers,
            d_ff=4 * args.hidden,
            decoder_start_token_id=0,
            pad_token_id=0,
        )
    ).eval()
    fixed = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False)
    print(
        f"active parameters: GffMoe {active_parameters(model, args.experts, 2):,}, T5 {active_parameters(t5, 1, 1):,}"
    )
    with torch.inference_mode():
        times = median_times(
            {
                "cached": lambda: model.generate(
                    input_ids=source, token_offsets=offsets, use_cache=True, **fixed
                ),
                "uncached": lambda: model.generate(
                    input_ids=source, token_offsets=offsets, use_cache=False, **fixed
                ),
                "t5": lambda: t5.generate(input_ids=source, use_cache=True, **fixed),
            },
            repeats=args.repeats,
        )
    cached, uncached, t5_rate = (
        args.batch * args.new_tokens / times[name] for name in ("cached", "uncached", "t5")
    )
    print(f"GffMoe cached   {cached:>8.0f} tokens/s")
    print(f"GffMoe uncached {uncached:>8.0f} tokens/s  -> cache speed-up {cached / uncached:.2f}x")
    print(f"T5 cached       {t5_rate:>8.0f} tokens/s  -> GffMoe / T5 {cached / t5_rate:.2f}x")


if __name__ == "__main__":
    main()
