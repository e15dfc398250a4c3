"""Checkpoints: the file format (format.py, re-exported here: checkpoint.save, checkpoint.load, ...), what a loaded
one must satisfy before use (validate.py), and a run's checkpoint slots (store.py)."""

from .format import (EMA_PREFIX, FORMAT, FORMAT_1, WEIGHTS_FORMAT, CorruptCheckpoint, load, load_model,
                     load_optimizer, model_tensors, optimizer_tensors, rng_state, save, set_rng_state)

__all__ = ["EMA_PREFIX", "FORMAT", "FORMAT_1", "WEIGHTS_FORMAT", "CorruptCheckpoint", "load", "load_model",
           "load_optimizer", "model_tensors", "optimizer_tensors", "rng_state", "save", "set_rng_state"]
