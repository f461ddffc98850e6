"""What the consumer loop runs on each batch: emulated accelerators and real training steps.

:class:`Workload` is the interface (``bind``, ``setup``, ``warmup``, ``step``);
:func:`parse_workload` turns a name into one. The model workloads (ResNets, the text
classifier) are imported only when asked for: they need torch and torchvision.
"""

from feedbench.pipelines.workloads.base import Workload
from feedbench.pipelines.workloads.emulated import Emulated
from feedbench.pipelines.workloads.parse import MODEL_WORKLOADS, parse_workload

__all__ = ["MODEL_WORKLOADS", "Emulated", "Workload", "parse_workload"]
