"""The data every feedbench pipeline reads: generated locally, or the user's own.

TensorFlow Datasets support (:func:`tfds_images`, :func:`tfds_text`) imports TensorFlow
only when called.
"""

from feedbench.datasets._store import Dataset, load
from feedbench.datasets.corpus import make_text_corpus
from feedbench.datasets.images import make_image_folder
from feedbench.datasets.parquet import ParquetShards, RowGroup, make_image_shards, scan_image_folder
from feedbench.datasets.tfds import tfds_images, tfds_text

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
