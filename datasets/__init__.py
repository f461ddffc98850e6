"""The data every feedbench pipeline reads: generated locally, or the user's own.

Names are imported on first use, so that a module that needs one of them (a DataLoader
worker listing an image folder, say) does not load what the others need (pyarrow for
Parquet shards, TensorFlow for TFDS).
"""

import importlib
from typing import Any

_LAZY = {
    "Dataset": "feedbench.datasets._store",
    "load": "feedbench.datasets._store",
    "make_text_corpus": "feedbench.datasets.corpus",
    "make_image_folder": "feedbench.datasets.images",
    "ParquetShards": "feedbench.datasets.parquet",
    "RowGroup": "feedbench.datasets.parquet",
    "make_image_shards": "feedbench.datasets.parquet",
    "scan_image_folder": "feedbench.datasets.folders",
    "tfds_images": "feedbench.datasets.tfds",
    "tfds_text": "feedbench.datasets.tfds",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'feedbench.datasets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "Dataset",
    "ParquetShards",
    "RowGroup",
    "load",
    "make_image_folder",
    "make_image_shards",
    "make_text_corpus",
    "scan_image_folder",
    "tfds_images",
    "tfds_text",
]
