"""Facts about the machine a result was measured on: CPU, cores, memory, GPU, versions.

Recorded beside every row of a comparison, so that a figure never travels without the
hardware and software it came from. Nothing here imports a framework or creates a CUDA
context: the GPU is named by torch only when torch has already initialised CUDA, else by
``nvidia-smi`` when it is on the PATH, else not at all (each run's RunResult names its device).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import platform
import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger(__name__)

LIBRARIES = ("feedbench", "torch", "torchvision", "tensorflow", "numpy", "pyarrow", "spacy", "nltk")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` says."""
    with contextlib.suppress(OSError):  # no /proc (not Linux): platform's word instead
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def gpu_name() -> str | None:
    """The first GPU's name, or None where there is none (or none can be named cheaply).

    torch is asked only when it has initialised CUDA already: asking it otherwise would create
    a CUDA context in this process (hundreds of MB of device memory) just for a name.
    """
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            if torch.cuda.is_initialized():
                return str(torch.cuda.get_device_name(0))
        except RuntimeError as exc:  # a broken driver: say nothing rather than fail a report
            log.debug("torch could not name the GPU: %s", exc)
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.debug("nvidia-smi failed: %s", exc)
        return None
    names = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    return names[0] if out.returncode == 0 and names else None


def usable_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity mask, not the machine's count), in order.

    Where the platform has no affinity mask, all of the machine's CPUs.
    """
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def default_workers() -> int:
    """One worker per CPU this process may use, less one for the consumer, at least 1."""
    return max(1, len(usable_cpus()) - 1)


def library_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def machine_facts() -> dict[str, Any]:
    """Flat facts about this machine and its software, the same for every row of a run."""
    facts: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpus_usable": len(usable_cpus()),
        "memory_bytes": psutil.virtual_memory().total,
        "gpu": gpu_name(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }
    facts.update({f"{name}_version": library_version(name) for name in LIBRARIES})
    return facts
