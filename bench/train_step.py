"""Training tokens/s of GffMoe vs transformers' SwitchTransformers and T5 at matched width, depth and active
parameters: same experts and top-1 for Switch (which only routes top-1); GffMoe's feed-forwards are GEGLU
(3 x hidden x inner weights), so the ReLU feed-forwards of T5 and of Switch's experts get d_ff = 1.5 x inner.

    python bench/train_step.py [--hidden 128 --layers 2 --experts 8 --batch 8 --source 544 --target 32]

The default batch has the shape of the demo's training batches (8 windows of 3 kb: a median 545 source and
26 target tokens); a taxon's real windows are longer still (prokaryotes: 9 kb, ~2,000 tokens). Every model
steps with fused AdamW, the Trainer's default optimizer. The three models are timed in interleaved rounds
(median of --repeats), so background load hits them alike.
GffMoe is also timed with its per-base track head (`track_loss_weight=1`, labels for every base of the
source), which must keep the target too.
Target: GffMoe >= 1.2x SwitchTransformers tokens/s.
"""

import argparse

import torch
from _common import active_parameters, gffmoe, machine, median_times
from transformers import (
    SwitchTransformersConfig,
    SwitchTransformersForConditionalGeneration,
    T5Config,
    T5ForConditionalGeneration,
)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for name, default in (
        ("hidden", 128),
        ("layers", 2),
        ("heads", 4),
        ("experts", 8),
        ("batch", 8),
        ("source", 544),
        ("target", 32),
        ("threads", 1),
        ("repeats", 5),
    ):
        parser.add_argument(f"--{name}", type=int, default=default)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine())
    torch.manual_seed(0)
    vocab, inner = 4096, 2 * args.hidden
    matched_d_ff = 3 * inner // 2
    source = torch.randint(5, vocab, (args.batch, args.source))
    labels = torch.randint(5, vocab, (args.batch, args.target))
    offsets = torch.stack([torch.arange(args.source) * 4, torch.arange(args.source) * 4 + 4], -1).expand(
        args.batch, -1, -1
    )
    track_labels = torch.stack(
        [torch.randint(0, n, (args.batch, 4 * args.source)) for n in (6, 7, 6, 7)], -1
    )  # region and boundary classes of both strands, one row per base
    common = dict(
        vocab_size=vocab,
        d_model=args.hidden,
        d_kv=args.hidden // args.heads,
        num_heads=args.heads,
        num_layers=args.layers,
        num_decoder_layers=args.layers,
        dropout_rate=0.0,
        decoder_start_token_id=0,
        pad_token_id=0,
    )
    models = {
        "GffMoe (top-1)": (
            gffmoe(args.hidden, args.layers, args.heads, inner, args.experts, 1),
            {"token_offsets": offsets},
        ),
        "GffMoe + track head": (
            gffmoe(args.hidden, args.layers, args.heads, inner, args.experts, 1, track_loss_weight=1.0),
            {"token_offsets": offsets, "track_labels": track_labels},
        ),
        "SwitchTransformers": (
            SwitchTransformersForConditionalGeneration(
                SwitchTransformersConfig(
                    **common,
                    d_ff=matched_d_ff,
                    num_experts=args.experts,
                    expert_capacity=args.batch * args.source,
                    encoder_sparse_step=0,
                    decoder_sparse_step=1,
                )
            ),
            {},
        ),
        "T5 (dense)": (T5ForConditionalGeneration(T5Config(**common, d_ff=matched_d_ff)), {}),
    }
    tokens = args.batch * (args.source + args.target)
    steps = {}
    for name, (model, extra) in models.items():
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)

        def step(model=model, extra=extra, optimizer=optimizer):
            optimizer.zero_grad()
            model(input_ids=source, labels=labels, **extra).loss.backward()
            optimizer.step()

        steps[name] = step
    times = median_times(steps, repeats=args.repeats)
    speeds = {name: tokens / seconds for name, seconds in times.items()}
    for name, (model, _) in models.items():
        top_k = 1 if name != "T5 (dense)" else args.experts
        print(
            f"{name:<20} {speeds[name]:>9.0f} tokens/s  ({sum(p.numel() for p in model.parameters()):,} params, "
            f"{active_parameters(model, args.experts, top_k):,} active)"
        )
    ours, tracked, switch = (
        speeds["GffMoe (top-1)"],
        speeds["GffMoe + track head"],
        speeds["SwitchTransformers"],
    )
    print(
        f"GffMoe / SwitchTransformers: {ours / switch:.2f}x (target >= 1.2x); GffMoe / T5: {ours / speeds['T5 (dense)']:.2f}x"
    )
    print(
        f"GffMoe + track head / SwitchTransformers: {tracked / switch:.2f}x (target >= 1.2x); "
        f"the head's cost: {ours / tracked:.2f}x the step time"
    )


if __name__ == "__main__":
    main()
