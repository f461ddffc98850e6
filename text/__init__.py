"""Text preprocessing for classification, one module per framework, same semantics.

:func:`torch_loader` (PyTorch DataLoader) and :func:`tf_dataset` (tf.data) take the same
keywords and give the same batches ``(token_ids int64 [B, T] padded with 0, lengths int64
[B], labels int64 [B])``. Both tokenize with one of :data:`TOKENIZERS` and encode with one
:class:`Vocab`. Each pipeline is imported on first use, so asking for one never imports the
other framework.
"""

from typing import Any

from feedbench.text._common import build_vocab
from feedbench.text._config import TextConfig
from feedbench.text._records import Corpus
from feedbench.text.tokenizers import TOKENIZERS, tokenize
from feedbench.text.vocab import PAD_ID, UNK_ID, Vocab

_LAZY = {
    "torch_loader": "feedbench.text.torch_pipeline",
    "build_torch_loader": "feedbench.text.torch_pipeline",
    "tf_dataset": "feedbench.text.tf_pipeline",
    "build_tf_dataset": "feedbench.text.tf_pipeline",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'feedbench.text' has no attribute {name!r}")


__all__ = [
    "PAD_ID",
    "TOKENIZERS",
    "UNK_ID",
    "Corpus",
    "TextConfig",
    "Vocab",
    "build_tf_dataset",
    "build_torch_loader",
    "build_vocab",
    "tf_dataset",
    "tokenize",
    "torch_loader",
]
