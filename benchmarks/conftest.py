"""Benchmarks: pytest-benchmark suites (run with `make bench`). torch is imported before
anything can import TensorFlow (DESIGN.md, "Import order")."""

import torch  # noqa: F401
import torchvision  # noqa: F401
