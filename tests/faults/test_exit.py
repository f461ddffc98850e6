"""Fault case: a script that measured successfully exits 0 (a script that ran measure() ended
now and then with "terminate called without an active exception" and status 134, after its
work was done)."""

import subprocess
import sys

SCRIPT = """
import os, sys
from feedbench.datasets import make_image_folder, make_text_corpus
from feedbench.pipelines import measure
from feedbench.text import tf_dataset as text_tf
from feedbench.vision import tf_dataset, torch_loader

if __name__ == "__main__":
    root = sys.argv[1]
    images = make_image_folder(os.path.join(root, "images"), 16, classes=2, size=(48, 40), workers=1).root
    text = make_text_corpus(os.path.join(root, "text"), 40, classes=2, workers=1).root
    for loader in (tf_dataset(images, batch_size=4, workers=2, image_size=32),
                   torch_loader(images, batch_size=4, workers=1, image_size=32),
                   text_tf(text, batch_size=4, workers=2, tokenizer="regex")):
        result = measure(loader, workload="emulated:2ms", device="cpu", steps=4, warmup=1)
        assert result.ok, result.error
    print("measured")
"""


def test_a_script_that_measured_exits_0(fault, tmp_path):
    for attempt in range(1):
        with fault.within(240):
            done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / str(attempt))], capture_output=True,
                                  text=True, timeout=230)
        assert "terminate called" not in done.stderr, done.stderr[-2000:]
        assert done.returncode == 0 and done.stdout.strip() == "measured", done.stderr[-2000:]
