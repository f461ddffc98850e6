"""What the docs and scripts say about how figures were measured agrees with the code."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_no_gpu_model_figure_is_called_fp32():
    """The model workloads run bf16 autocast on CUDA (workloads.models.precision): a figure of a
    ResNet step on the GPU is never described as fp32."""
    said = []
    for path in [*REPO.glob("docs/*.md"), *REPO.glob("benchmarks/*.py"), REPO / "README.md"]:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"fp32|FP32", line) and re.search(r"ResNet|resnet", line) and "CPU" not in line:
                said.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not said, "\n".join(said)
