"""Command line: `python -m tokenization {init_tk,build_tk,append_tk,resize_model} ...`.

init_tk OUT                        write the full GFF token list (one token per line)
build_tk OUT_DIR (--dnabert_path PATH | --fasta FASTA...)
                                   DNABERT-2 tokenizer (or a BPE trained on FASTA) + GFF vocabulary
append_tk TOKENS_FILE TOKENIZER    append new tokens to a tokenizer.json or tokenizer directory
resize_model MODEL_DIR TOKENIZER_DIR
                                   resize a saved model's embeddings to the tokenizer, in place
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genome_io.cli import old_spelling, run_cli

from .codec import codec_vocabulary
from .tokenizer import TokenizerError, check_added_token

PROG = "python -m tokenization"
TOKEN_FILE_HELP = (
    "one token per line (a bare feature type such as weird_feature means <weird_feature>); "
    "blank lines and lines starting with # are ignored"
)


def read_token_file(path: str | Path) -> list[str]:
    """Tokens of a token list file, validated; errors name the file and line."""
    from core.errors import InputError

    tokens = []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as err:
        raise InputError(path, None, f"cannot read the token file ({err.strerror})") from None
    for number, line in enumerate(lines, start=1):
        token = line.strip()
        if not token or token.startswith("#"):
            continue
        if token[0] not in "<[":  # a feature type written bare
            token = f"<{token}>"
        try:
            check_added_token(token)
        except TokenizerError as err:
            raise InputError(path, number, str(err)) from None
        tokens.append(token)
    return tokens


def init_tk(args) -> None:
    tokens = codec_vocabulary(args.extra_types)
    Path(args.out).write_text("\n".join(tokens) + "\n")
    print(f"wrote {len(tokens)} tokens to {args.out}")


def build_tk(args) -> None:
    from .tokenizer import build_tokenizer

    extra = read_token_file(args.tokens) if args.tokens else []
    tokenizer = build_tokenizer(args.out_dir, args.dnabert_path, args.fasta, extra, args.vocab_size)
    print(f"saved a {len(tokenizer)}-token tokenizer to {args.out_dir}")


def append_tk(args) -> None:
    from core.errors import InputError

    tokens = read_token_file(args.tokens_file)
    target = Path(args.tokenizer)
    tokenizer_file = target / "tokenizer.json" if target.is_dir() else target
    if not tokenizer_file.is_file():
        raise InputError(tokenizer_file, None, "no such file: append_tk needs a tokenizer to append to")
    from transformers import PreTrainedTokenizerFast

    from .tokenizer import extend_tokenizer, read_tokenizer

    is_dir = target.is_dir()
    tokenizer = read_tokenizer(target) if is_dir else PreTrainedTokenizerFast(tokenizer_file=str(target))
    added = extend_tokenizer(tokenizer, tokens)
    if added and is_dir:
        tokenizer.save_pretrained(str(target))
    elif added:
        tokenizer.backend_tokenizer.save(str(target))
    size = len(tokenizer)
    print(f"added {added} of {len(tokens)} tokens to {target} ({size} tokens now)")


def resize_model(args) -> None:
    from .tokenizer import resize_saved_model

    old, new = resize_saved_model(args.model_dir, args.tokenizer_dir)
    print(f"resized {args.model_dir} embeddings from {old} to {new} rows")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="GFF-MoE tokenizer tools (GFF vocabulary, DNABERT-2 BPE)."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("init_tk", help="write the full GFF token list")
    p.add_argument("out", help="token list file to write (one token per line)")
    extra_types = p.add_argument("--extra_types", nargs="*", default=[], help="additional feature type names")
    old_spelling(p, extra_types, "--extra-types")
    p.set_defaults(run=init_tk)

    p = commands.add_parser("build_tk", help="build and save the extended tokenizer")
    p.add_argument("out_dir", help="directory to save the tokenizer to (save_pretrained)")
    source = p.add_mutually_exclusive_group(required=True)
    dnabert = source.add_argument("--dnabert_path", help="DNABERT-2 tokenizer: local directory or hub id")
    old_spelling(source, dnabert, "--dnabert")
    source.add_argument("--fasta", nargs="+", help="FASTA files to train a DNABERT-2-style BPE on (offline)")
    vocab_size = p.add_argument(
        "--vocab_size", type=int, default=4096, help="BPE vocabulary size when training (default 4096)"
    )
    old_spelling(p, vocab_size, "--vocab-size")
    p.add_argument("--tokens", help=f"extra token list file ({TOKEN_FILE_HELP})")
    p.set_defaults(run=build_tk)

    p = commands.add_parser("append_tk", help="append tokens to a tokenizer (idempotent, order kept)")
    p.add_argument("tokens_file", help=f"token list file ({TOKEN_FILE_HELP})")
    p.add_argument(
        "tokenizer", help="tokenizer.json file or a save_pretrained tokenizer directory (edited in place)"
    )
    p.set_defaults(run=append_tk)

    p = commands.add_parser("resize_model", help="resize a saved model's token embeddings to a tokenizer")
    p.add_argument("model_dir", help="save_pretrained model directory (rewritten in place, with its code)")
    p.add_argument("tokenizer_dir", help="tokenizer directory")
    p.set_defaults(run=resize_model)
    return parser


def main(argv: list[str] | None = None) -> int:
    def command(argv):
        args = build_parser().parse_args(argv)
        args.run(args)

    return run_cli(PROG, command, argv, errors=(TokenizerError, OSError))


if __name__ == "__main__":
    sys.exit(main())
