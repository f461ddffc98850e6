"""The two image pipelines against each other: same keywords, same batches.

Eval mode with shuffle off: the same labels in the same order, and images whose mean
absolute difference (normalized units) stays under PIXEL_TOLERANCE. The remaining
difference is the resize kernels (torchvision's and TensorFlow's antialiased bilinear) and
JPEG decoder settings; docs/vision.md records the measured figure.
"""

import numpy as np
import pytest
import torch

from feedbench.vision import tf_dataset, torch_loader

PIXEL_TOLERANCE = 0.05  # normalized units (one grey level is 1/255/0.226 = 0.017)


def _torch(source, **kw):
    batches = list(torch_loader(source, **kw))
    return torch.cat([b[0] for b in batches]).numpy(), torch.cat([b[1] for b in batches]).numpy()


def _tf(source, **kw):
    batches = list(tf_dataset(source, **kw).as_numpy_iterator())
    images = np.concatenate([b[0] for b in batches]).transpose(0, 3, 1, 2)  # NHWC -> NCHW
    return images, np.concatenate([b[1] for b in batches])


@pytest.mark.parametrize("output", ["float", "uint8"])
@pytest.mark.parametrize("kind", ["folder", "shards"])
def test_eval_batches_agree(small_folder, small_shards, kind, output):
    source = small_folder.root if kind == "folder" else small_shards.root
    kw = dict(train=False, shuffle=False, batch_size=5, workers=1, image_size=64, output=output)
    t_images, t_labels = _torch(source, **kw)
    f_images, f_labels = _tf(source, **kw)
    assert t_labels.dtype == f_labels.dtype == np.int64
    assert t_labels.tolist() == f_labels.tolist()
    assert t_images.shape == f_images.shape and t_images.dtype == f_images.dtype
    difference = np.abs(t_images.astype(np.float64) - f_images.astype(np.float64)).mean(axis=(1, 2, 3))
    scale = 255 * 0.226 if output == "uint8" else 1.0  # compare in normalized units
    assert (difference / scale).max() < PIXEL_TOLERANCE, (difference / scale).round(4).tolist()


def test_train_batches_agree_in_shape_dtype_and_range(small_folder):
    kw = dict(train=True, batch_size=8, workers=1, image_size=48, seed=3)
    t_images, t_labels = _torch(small_folder.root, **kw)
    f_images, f_labels = _tf(small_folder.root, **kw)
    assert t_images.shape == f_images.shape == (24, 3, 48, 48)
    assert sorted(t_labels.tolist()) == sorted(f_labels.tolist())
    assert abs(float(t_images.min()) - float(f_images.min())) < 0.2
    assert abs(float(t_images.max()) - float(f_images.max())) < 0.2
