"""The DataLoader settings both torch pipelines (image and text) share: one place that says
what `workers` and `prefetch` mean for a DataLoader, so that the two cannot drift apart."""

from __future__ import annotations

from typing import Any

from feedbench.pipelines.core.checks import AUTOTUNE
from feedbench.pipelines.core.machine import usable_cpus

WORKER_TIMEOUT_S = 120.0  # a worker that sends nothing for this long is an error, not a hang


def dataloader_options(workers: int | str, prefetch: int | str) -> dict[str, Any]:
    """DataLoader keywords for a config's `workers` and `prefetch`.

    "autotune" workers means one process per core this process may use (torch has no
    autotuning), "autotune" prefetch means 2; prefetch 0 becomes 1 per worker (a DataLoader
    cannot prefetch less); 0 workers loads in the calling process.
    """
    import torch

    count = len(usable_cpus()) if workers == AUTOTUNE else int(workers)
    depth = 2 if prefetch == AUTOTUNE else int(prefetch)
    return {
        "num_workers": count,
        "prefetch_factor": max(1, depth) if count else None,
        "persistent_workers": count > 0,
        "pin_memory": torch.cuda.is_available(),
        "timeout": WORKER_TIMEOUT_S if count else 0,
        # Spawned, not forked: the loop starts workers from its fetch thread while other
        # threads run, and a fork copies their locks (and TensorFlow's thread pools).
        "multiprocessing_context": "spawn" if count else None,
    }


class DeviceAwareLoader:
    """What feedbench's DataLoaders (image and text) add to ``torch.utils.data.DataLoader``, as a
    mixin: they pin memory only when the run's device is CUDA (``use_device``, which the consumer
    loop calls before the first batch; pinning for a CPU run is a copy for nothing), and they say
    which threads each mode runs."""

    num_workers: int
    pin_memory: bool

    def use_device(self, device_type: str) -> None:
        import torch

        self.pin_memory = device_type == "cuda" and torch.cuda.is_available()

    def thread_roles(self) -> tuple[tuple[str, int], ...]:
        """(role, threads): the main process's intra-op threads (which decode and transform at
        workers=0), and one intra-op thread in each worker process (the DataLoader sets it)."""
        import torch

        roles = [("main process intra-op", torch.get_num_threads())]
        if self.num_workers:
            roles.append(("intra-op per worker process", 1))
        return tuple(roles)
