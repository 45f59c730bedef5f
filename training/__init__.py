"""Training helpers for train.py: data preparation and collation, the Trainer subclass, metrics, model card."""
