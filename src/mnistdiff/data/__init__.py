"""MNIST: the four IDX files (mnist.py: download, verification, parsing), the model's pixel range (pixels.py) and
the training order (order.py). Imports only the shared modules."""

from .mnist import (DEFAULT_DATA_DIR, MIRRORS, SHA256, SPLITS, Split, download, load_split, mirrors, parse_idx,
                    resolve_data_dir)
from .order import epoch_permutation, subset_indices
from .pixels import DATA_RANGE, to_model_range, to_uint8

__all__ = ["DEFAULT_DATA_DIR", "MIRRORS", "SHA256", "SPLITS", "Split", "download", "load_split", "mirrors",
           "parse_idx", "resolve_data_dir", "epoch_permutation", "subset_indices", "DATA_RANGE", "to_model_range",
           "to_uint8"]
