"""GFF-MoE tokenization: the target codec, coordinate schemes and the extended DNABERT-2 tokenizer."""
