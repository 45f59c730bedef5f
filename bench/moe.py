"""MoE feed-forward forward+backward time vs a dense GEGLU feed-forward with the same active FLOPs.

    python bench/moe.py [--tokens 4096 --hidden 256 --expert_inner 256 --top_k 2 --experts 8 32]

The dense reference has inner width top_k x expert_inner, so both do the same multiply-adds per token. Each
experts implementation is timed (transformers' grouped_mm, and GffMoe's eager sort-based loop), all in
interleaved rounds with the dense reference (median of --repeats), so background load hits them alike.
Target: ratio <= 1.5 at 8 and 32 experts.
"""

import argparse

import torch
from _common import machine, median_times

from configuration_gffmoe import GffMoeConfig
from modeling_gffmoe import GffMoeGegluMlp, GffMoeSparseMoeBlock


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--expert_inner", type=int, default=256)
    parser.add_argument("--top_k", type=int, default=2)
    parser.add_argument("--experts", type=int, nargs="+", default=[8, 32])
    parser.add_argument(
        "--implementations",
        nargs="+",
        default=["grouped_mm", "eager"],
        help="experts implementations to time (grouped_mm, eager, batched_mm)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine())
    torch.manual_seed(0)
    tokens = torch.randn(args.tokens, args.hidden, requires_grad=True)

    def step(module):
        out = module(tokens)
        out = out[0] if isinstance(out, tuple) else out
        out.sum().backward()

    dense_config = GffMoeConfig(
        hidden_size=args.hidden,
        num_attention_heads=1,
        intermediate_size=args.top_k * args.expert_inner,
        hidden_dropout_prob=0.0,
    )
    dense = GffMoeGegluMlp(dense_config)
    candidates = {"dense": lambda: step(dense)}
    for experts in args.experts:
        for implementation in args.implementations:
            config = GffMoeConfig(
                hidden_size=args.hidden,
                num_attention_heads=1,
                intermediate_size=args.expert_inner,
                num_experts=experts,
                moe_top_k=args.top_k,
            )
            config._experts_implementation = implementation
            block = GffMoeSparseMoeBlock(config)
            with torch.no_grad():
                for param in block.parameters():
                    param.normal_(0, 0.02)
            candidates[(experts, implementation)] = lambda block=block: step(block)
    times = median_times(candidates, repeats=args.repeats)
    dense_time = times.pop("dense")
    print(
        f"dense GEGLU (inner {args.top_k * args.expert_inner}): {dense_time * 1e3:.1f} ms fwd+bwd for {args.tokens} tokens"
    )
    for (experts, implementation), moe_time in times.items():
        print(
            f"MoE {experts:>3} experts top-{args.top_k} ({implementation}): {moe_time * 1e3:.1f} ms  ratio vs dense {moe_time / dense_time:.2f}x (target <= 1.5x)"
        )


if __name__ == "__main__":
    main()
