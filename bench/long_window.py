"""Peak memory and time of one encoder forward at 2k, 8k and 20k tokens: query-chunked attention keeps
memory linear in length (each chunk holds chunk x length scores per head, never length x length).

    python bench/long_window.py [--lengths 2048 8192 20480 --hidden 256 --layers 2 --heads 4]

Each measurement runs in a fresh subprocess (peak RSS is per process). The reference row is the same
encoder with one chunk spanning the whole input (full length x length scores), measured where it fits.
"""

import argparse
import json
import resource
import subprocess
import sys
import time

import torch


def measure(args) -> dict:
    from _common import gffmoe

    torch.set_num_threads(args.threads)
    model = gffmoe(
        args.hidden, args.layers, args.heads, 2 * args.hidden, 2, 1, attention_block_size=args.block
    ).eval()
    input_ids = torch.randint(5, 4096, (1, args.length))
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with torch.inference_mode():
        model.encoder(input_ids, torch.ones_like(input_ids))
    seconds = time.perf_counter() - start
    peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline) / 1024
    return {"length": args.length, "block": args.block, "seconds": seconds, "peak_mb": peak_mb}


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", type=int, nargs="+", default=[2048, 8192, 20480])
    parser.add_argument("--reference_lengths", type=int, nargs="+", default=[2048, 8192])
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--block", type=int, default=512, help="attention_block_size: queries per block")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--length", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.length is not None:
        print(json.dumps(measure(args)))
        return

    def run(length, block):
        argv = [sys.executable, __file__, "--length", str(length), "--block", str(block)]
        argv += [
            "--hidden",
            str(args.hidden),
            "--layers",
            str(args.layers),
            "--heads",
            str(args.heads),
            "--threads",
            str(args.threads),
        ]
        return json.loads(
            subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        )

    from _common import machine

    torch.set_num_threads(args.threads)
    print(machine())
    rows = [run(n, args.block) for n in args.lengths]
    first = rows[0]
    print(f"{'length':>8} {'block':>7} {'seconds':>8} {'peak MB':>8} {'MB per 1k tokens':>17}")
    for row in rows:
        print(
            f"{row['length']:>8} {row['block']:>7} {row['seconds']:>8.2f} {row['peak_mb']:>8.0f} {1000 * row['peak_mb'] / row['length']:>17.1f}"
        )
    growth = rows[-1]["peak_mb"] / max(first["peak_mb"], 1e-9)
    print(
        f"memory growth {first['length']} -> {rows[-1]['length']} tokens: {growth:.1f}x for {rows[-1]['length'] / first['length']:.1f}x length (quadratic would be {(rows[-1]['length'] / first['length']) ** 2:.0f}x)"
    )
    for n in args.reference_lengths:
        ref = run(n, n)
        ours = next((r for r in rows if r["length"] == n), None)
        if ours:
            print(
                f"unchunked reference at {n}: {ref['peak_mb']:.0f} MB, {ref['seconds']:.2f} s -> chunked uses {ours['peak_mb'] / ref['peak_mb']:.2f}x memory, {ours['seconds'] / ref['seconds']:.2f}x time"
            )


if __name__ == "__main__":
    main()
