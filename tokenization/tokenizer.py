"""The GFF-MoE tokenizer: DNABERT-2's BPE over DNA plus the codec's GFF vocabulary as added tokens.

DNA is tokenized exactly as DNABERT-2 does (BPE, Whitespace pre-tokenizer, `[CLS] $A [SEP]`); the GFF
tokens are bracketed strings (`<gene>`, `<n12>`, `[ATT]`, ...) that cannot occur in DNA or inside each
other, so a codec text tokenizes to exactly its tokens. Pointer tokens `<@i>` are not vocabulary: their
ids are `len(tokenizer) + i`, the model's pointer slots.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from os import PathLike
from pathlib import Path

from tokenizers import AddedToken, Tokenizer
from tokenizers.models import BPE
from tokenizers.pre_tokenizers import Whitespace
from tokenizers.processors import TemplateProcessing
from tokenizers.trainers import BpeTrainer
from transformers import PreTrainedTokenizerFast

from core.features import Gene
from genome_io.fasta import normalise_dna

from .codec import (
    ANNOTATION_TASK,
    BOS,
    EOS,
    HINTS_TASK,
    DecodeResult,
    codec_vocabulary,
    decode,
    encode,
    normalise,
    target_tokens,
    text_to_genes,
)
from .coordinates import MAX_OFFSET, CoordinateScheme, NumberCoordinates, pointer_position, pointer_token

# DNABERT-2's special tokens, in its id order (ids 0-4).
SPECIAL_TOKENS = ("[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]")
SPECIAL_TOKEN_ROLES = {"unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]"}
SPECIAL_TOKEN_ROLES["mask_token"] = "[MASK]"
TRAINING_CHUNK_BP = 1000  # DNABERT-2 trains on text lines; whole chromosomes as one word are slow to count
# DNABERT-2's vocabulary has no N (each N would be one [UNK], an assembly gap thousands of them, and [UNK]
# says nothing of its length). Where the BPE lacks N, N runs are added tokens of 64 ... 1 bp: matched
# longest first, a run of n Ns costs at most n // 64 + 6 tokens, and each spans <= MAX_OFFSET bases.
N_RUN_TOKENS = tuple("N" * 2**k for k in range(6, -1, -1))

_DNA_ALPHABET = frozenset("ACGTN")


class TokenizerError(ValueError):
    """A tokenizer or input that the GFF vocabulary cannot work with."""


def clean_dna(dna: str) -> str:
    """`normalise_dna` (upper-case ACGTN, U -> T, other IUPAC codes -> N); TokenizerError on any other
    character."""
    cleaned = normalise_dna(dna)
    if not _DNA_ALPHABET.issuperset(cleaned):
        position, char = next((i, c) for i, c in enumerate(cleaned) if c not in _DNA_ALPHABET)
        raise TokenizerError(f"character {char!r} at position {position} is not a nucleotide code")
    return cleaned


# ---------------------------------------------------------------- the DNA tokenizer


def read_tokenizer(path_or_id: str | PathLike) -> PreTrainedTokenizerFast:
    """A tokenizer from its own files (tokenizer.json, tokenizer_config.json) in a directory or hub repository.

    Never through AutoTokenizer: that reads config.json's `auto_map` (DNABERT-2's points at its remote code)
    and asks whether to run it, which would hang a batch job. Hub files resolve from the cache offline.
    """
    try:
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path_or_id))
    except (OSError, ValueError) as err:
        raise TokenizerError(f"{path_or_id}: cannot load a tokenizer ({str(err).splitlines()[0]})") from None
    for role, token in SPECIAL_TOKEN_ROLES.items():  # a bare tokenizer.json declares no roles
        if getattr(tokenizer, role) is None and token in tokenizer.get_vocab():
            setattr(tokenizer, role, token)
    return tokenizer


def load_dnabert_tokenizer(path_or_id: str | PathLike) -> PreTrainedTokenizerFast:
    """A DNABERT-2 tokenizer from a local directory or a hub id (special tokens as its files declare)."""
    tokenizer = read_tokenizer(path_or_id)
    check_dna_tokens(tokenizer)
    return tokenizer


def check_dna_tokens(tokenizer) -> None:
    """Fail clearly when a DNA token is too long for the pointer scheme's offsets."""
    dna_tokens = [t for t in tokenizer.get_vocab() if t and _DNA_ALPHABET.issuperset(t)]
    longest = max(dna_tokens, key=len, default="")
    if len(longest) > MAX_OFFSET:
        raise TokenizerError(
            f"the tokenizer has a {len(longest)}-bp DNA token, longer than MAX_OFFSET={MAX_OFFSET} "
            "offsets the pointer coordinates can address"
        )


def train_dna_bpe(
    fasta_paths: Sequence[str | PathLike] | None = None,
    vocab_size: int = 4096,
    sequences: Iterable[str] = (),
) -> PreTrainedTokenizerFast:
    """Train a DNABERT-2-style BPE (its own recipe: Whitespace, min_frequency 2, `[CLS] $A [SEP]`).

    Tokens are capped at MAX_OFFSET bp so that every base can be addressed by a pointer coordinate.
    """
    from genome_io.fasta import read_fasta  # genome I/O is only needed for training

    def chunks() -> Iterator[str]:
        for path in fasta_paths or ():
            for _, seq in read_fasta(path):
                yield from _split(clean_dna(seq))
        for seq in sequences:
            yield from _split(clean_dna(seq))

    bpe = Tokenizer(BPE(unk_token="[UNK]"))
    bpe.pre_tokenizer = Whitespace()
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=sorted(_DNA_ALPHABET),
        max_token_length=MAX_OFFSET,
        show_progress=False,
    )
    bpe.train_from_iterator(chunks(), trainer)
    bpe.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[(t, bpe.token_to_id(t)) for t in ("[CLS]", "[SEP]")],
    )
    return PreTrainedTokenizerFast(tokenizer_object=bpe, **SPECIAL_TOKEN_ROLES)


def _split(seq: str) -> Iterator[str]:
    for i in range(0, len(seq), TRAINING_CHUNK_BP):
        yield seq[i : i + TRAINING_CHUNK_BP]


def save_dnabert_format(tokenizer: PreTrainedTokenizerFast, out_dir: str | PathLike) -> Path:
    """Write `tokenizer.json` + `tokenizer_config.json` exactly as DNABERT-2's repository ships them."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.backend_tokenizer.save(str(out / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", **SPECIAL_TOKEN_ROLES}
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return out


# ---------------------------------------------------------------- the GFF vocabulary


def extend_tokenizer(tokenizer: PreTrainedTokenizerFast, tokens: Iterable[str] | None = None) -> int:
    """Add GFF tokens (default: the whole codec vocabulary) that the tokenizer lacks, and N_RUN_TOKENS where
    its BPE has no N; returns how many.

    Idempotent and order-preserving. `<bos>` / `<eos>` become the tokenizer's bos/eos tokens. Tokens are
    added un-normalised and not whole-word, so they match exactly where they stand.
    """
    tokens = list(codec_vocabulary() if tokens is None else tokens)
    for token in tokens:
        check_added_token(token)
    vocab = tokenizer.get_vocab()
    if "N" not in vocab:
        tokens += N_RUN_TOKENS
    missing = [t for t in dict.fromkeys(tokens) if t not in vocab]
    added = tokenizer.add_tokens([AddedToken(t, normalized=False) for t in missing]) if missing else 0
    set_gff_roles(tokenizer)
    return added


def set_gff_roles(tokenizer) -> None:
    """`<bos>` / `<eos>`, where the vocabulary has them, are the tokenizer's bos/eos tokens."""
    vocab = tokenizer.get_vocab()
    if BOS in vocab and tokenizer.bos_token != BOS:
        tokenizer.bos_token = BOS
    if EOS in vocab and tokenizer.eos_token != EOS:
        tokenizer.eos_token = EOS


def set_special_tokens(model, tokenizer) -> None:
    """The decoder starts with <bos> (or [CLS]) and stops at <eos> (or [SEP]); generation reads these."""
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.cls_token_id
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    for holder in (model.config, model.generation_config):
        holder.pad_token_id, holder.bos_token_id, holder.eos_token_id = tokenizer.pad_token_id, bos, eos
        holder.decoder_start_token_id = bos


def check_gff_vocabulary(tokenizer, model_dir: str | PathLike) -> None:
    """A model's tokenizer must carry the GFF vocabulary; the error names the recipe's commands that add it."""
    missing = [t for t in (BOS, EOS, ANNOTATION_TASK) if t not in tokenizer.get_vocab()]
    if missing:
        raise TokenizerError(
            f"the tokenizer has no GFF vocabulary ({', '.join(missing)} missing); add it with "
            f"`python -m tokenization init_tk new_tokens.txt`, `python -m tokenization append_tk "
            f"new_tokens.txt {model_dir}/tokenizer.json`, `python -m tokenization resize_model {model_dir} "
            f"{model_dir}`"
        )


def check_added_token(token: str) -> None:
    """A GFF token must be `<...>` or `[...]` with no brackets or whitespace inside (so none can occur
    inside DNA or inside another token)."""
    inner = token[1:-1]
    if (
        len(token) < 3
        or (token[0], token[-1]) not in (("<", ">"), ("[", "]"))
        or any(c in "<>[]" or c.isspace() for c in inner)
        or pointer_position(token) is not None
    ):
        raise TokenizerError(f"{token!r} is not a GFF token (<name> or [NAME], no brackets or spaces inside)")


def build_tokenizer(
    out_dir: str | PathLike,
    dnabert_path: str | PathLike | None = None,
    fasta_paths: Sequence[str | PathLike] | None = None,
    extra_tokens: Iterable[str] = (),
    vocab_size: int = 4096,
) -> PreTrainedTokenizerFast:
    """DNABERT-2's tokenizer (or a BPE trained on `fasta_paths`) + GFF vocabulary, saved to `out_dir`."""
    if dnabert_path is not None:
        tokenizer = load_dnabert_tokenizer(dnabert_path)
    elif fasta_paths:
        tokenizer = train_dna_bpe(fasta_paths, vocab_size)
    else:
        raise TokenizerError(
            "build_tokenizer needs a DNABERT-2 tokenizer (dnabert_path) or FASTA files to train on"
        )
    extend_tokenizer(tokenizer, [*codec_vocabulary(), *extra_tokens])
    tokenizer.save_pretrained(str(out_dir))
    return tokenizer


def load_tokenizer(path: str | PathLike) -> PreTrainedTokenizerFast:
    """The extended tokenizer saved by `build_tokenizer` (or `python -m tokenization`)."""
    tokenizer = read_tokenizer(path)
    try:
        check_gff_vocabulary(tokenizer, path)
    except TokenizerError as err:
        raise TokenizerError(f"{path}: {err}") from None
    return tokenizer


# ---------------------------------------------------------------- source and target ids


def encode_source(
    tokenizer, dna: str, max_length: int | None = None, hints: str | Iterable[Gene] | None = None
) -> dict[str, list]:
    """Encoder inputs for one DNA window: input_ids, attention_mask and token_offsets.

    token_offsets[i] = (start, end), the half-open base span of token i ((0, 0) for [CLS]/[SEP]).

    `hints` (genes in window coordinates, or their codec text as the dataset's `hints` column stores it)
    are input-side evidence, as AUGUSTUS hints: `[CLS] DNA [SEP] [HIT] records [SEP]`, the records in the
    number scheme. Hint tokens have the empty span (0, 0), so no pointer can name them. Without hints
    (None, "" or no genes) the input is the plain `[CLS] DNA [SEP]`.

    `max_length` truncates the DNA first only when the DNA alone is too long; hints never displace DNA:
    they are clipped to the bases the source covers, and whole records that do not fit are left out
    (canonical order, i.e. from the window's left end). No record fits -> no hint part at all.
    """
    encoding = tokenizer(
        clean_dna(dna),
        return_offsets_mapping=True,
        truncation=max_length is not None,
        max_length=max_length,
    )
    source = {
        "input_ids": list(encoding["input_ids"]),
        "attention_mask": list(encoding["attention_mask"]),
        "token_offsets": [tuple(span) for span in encoding["offset_mapping"]],
    }
    hint_ids = _hint_ids(tokenizer, hints, source["token_offsets"], max_length, len(source["input_ids"]))
    if hint_ids:
        source["input_ids"] += hint_ids
        source["attention_mask"] += [1] * len(hint_ids)
        source["token_offsets"] += [(0, 0)] * len(hint_ids)
    return source


def _hint_ids(tokenizer, hints, token_offsets, max_length: int | None, used: int) -> list[int]:
    """`[HIT] records [SEP]` ids of the hints that fit (see `encode_source`); [] when none."""
    if not hints:
        return []
    if isinstance(hints, str):
        decoded = text_to_genes(hints)
        if decoded.errors:
            raise TokenizerError(f"hint text does not decode: {decoded.errors[0]}")
        hints = decoded.genes
    covered = max(end for _, end in token_offsets)  # bases the (possibly truncated) DNA part shows
    genes = normalise(clipped for gene in hints if (clipped := gene.clip(0, covered - 1)) is not None)
    budget = None if max_length is None else max_length - used - 2  # room left besides [HIT] and [SEP]
    records: list[int] = []
    for gene in genes:
        ids = tokens_to_ids(tokenizer, encode([gene], NumberCoordinates()))
        if budget is not None and len(records) + len(ids) > budget:
            break
        records += ids
    if not records:
        return []
    return [*tokens_to_ids(tokenizer, [HINTS_TASK]), *records, tokenizer.sep_token_id]


def tokens_to_ids(tokenizer, tokens: Iterable[str]) -> list[int]:
    """Vocabulary ids of codec tokens; a pointer `<@i>` becomes `len(tokenizer) + i`."""
    tokens = list(tokens)
    size = len(tokenizer)
    # One batched lookup (get_vocab() copies the whole vocabulary: 20x slower per window).
    named = iter(tokenizer.convert_tokens_to_ids([t for t in tokens if pointer_position(t) is None]))
    ids = []
    for token in tokens:
        position = pointer_position(token)
        if position is not None:
            ids.append(size + position)
            continue
        token_id = next(named)
        if token_id is None or (token_id == tokenizer.unk_token_id and token != tokenizer.unk_token):
            raise TokenizerError(
                f"token {token!r} is not in the tokenizer; add it with `python -m tokenization append_tk`"
            )
        ids.append(token_id)
    return ids


def ids_to_tokens(tokenizer, ids: Iterable[int]) -> list[str]:
    """Inverse of `tokens_to_ids` (ids past the vocabulary are pointers)."""
    size = len(tokenizer)
    ids = [int(i) for i in ids]
    names = tokenizer.convert_ids_to_tokens([i if i < size else 0 for i in ids])
    return [pointer_token(i - size) if i >= size else name for i, name in zip(ids, names, strict=True)]


def target_ids(
    genes: Iterable[Gene], tokenizer, scheme: CoordinateScheme, task: str = ANNOTATION_TASK
) -> list[int]:
    """Decoder labels of one window: ids of `task gene* <eos>`."""
    return tokens_to_ids(tokenizer, target_tokens(genes, scheme, task))


def decode_ids(ids: Iterable[int], tokenizer, scheme: CoordinateScheme) -> DecodeResult:
    """Genes (and errors) from generated ids; never raises."""
    return decode(ids_to_tokens(tokenizer, ids), scheme)


# ---------------------------------------------------------------- model embeddings


def resize_saved_model(model_dir: str | PathLike, tokenizer_dir: str | PathLike) -> tuple[int, int]:
    """Resize a saved model's token embeddings to the tokenizer and save both back (with the model code).

    New rows start at the mean of the old ones (`mean_resizing=True`); old rows are untouched and a tied
    output head stays tied. A GFF-MoE model also learns the new tokens' spelling and, once the vocabulary has
    `<bos>` / `<eos>`, decodes between them. Returns (old rows, new rows).
    """
    import transformers
    from transformers import AutoConfig, AutoModelForSeq2SeqLM

    tokenizer = read_tokenizer(tokenizer_dir)
    set_gff_roles(tokenizer)
    size = len(tokenizer)
    config = AutoConfig.from_pretrained(str(model_dir), trust_remote_code=True)
    # The saved architecture keeps its head (AutoModel would drop it); custom code goes through auto_map.
    known = [getattr(transformers, a) for a in config.architectures or () if hasattr(transformers, a)]
    if known:
        model = known[0].from_pretrained(str(model_dir))
    else:
        model = AutoModelForSeq2SeqLM.from_pretrained(str(model_dir), trust_remote_code=True)
    old = model.get_input_embeddings().weight.shape[0]
    if size < old:
        raise TokenizerError(
            f"{tokenizer_dir}: {size} tokens but the model has {old} embedding rows; not shrinking"
        )
    if size > old:
        model.resize_token_embeddings(size, mean_resizing=True)
        if hasattr(model, "set_dna_vocabulary"):
            model.set_dna_vocabulary(tokenizer.convert_ids_to_tokens(list(range(size))), tokenizer.unk_token)
            set_special_tokens(model, tokenizer)
        model.save_pretrained(str(model_dir))
        # The directory's own tokenizer must match its embeddings (train.py refuses a mismatch).
        tokenizer.save_pretrained(str(model_dir))
    return old, size
