"""Constants of the common batch format (DESIGN.md, "Common batch format"), shared by the
pipelines that make batches and the workloads that consume them.

- image: ``(images, labels)``; images float32 normalized with :data:`IMAGENET_MEAN` and
  :data:`IMAGENET_STD`, or uint8 (normalized on the device); labels int64 ``[B]``.
- text: ``(token_ids int64 [B, T] padded with PAD_ID, lengths int64 [B], labels int64 [B])``.
"""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PAD_ID = 0  # the id that pads token_ids; the vocabulary's "<pad>"
