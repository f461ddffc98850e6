"""How a run is measured, declared once: :class:`MeasureConfig` and its command-line options.

``measure``, isolated runs (``RunSpec``), a grid's ``Settings``, the pytest fixture and the
CLI all hold one frozen MeasureConfig; it is validated here and nowhere else. The options
that set it from a command line (the CLI's ``--steps``, the pytest plugin's
``--feedbench-steps``) are declared once, in :data:`OPTIONS`, and added to a parser by
:func:`add_options`, whose `addoption` may be argparse's ``add_argument`` or pytest's
``addoption`` (pytest-benchmark declares its options the same way).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from feedbench.pipelines.core import checks
from feedbench.pipelines.core.errors import ConfigError
from feedbench.pipelines.core.machine import usable_cpus
from feedbench.pipelines.workloads import Workload
from feedbench.pipelines.workloads.parse import check_workload

DEFAULT_STEPS = 50
AUTO = "auto"
FALLBACK_WARMUP = 5  # "auto" warm-up for a loader that does not say how far ahead it makes batches


@dataclass(frozen=True)
class MeasureConfig:
    """How one run is measured.

    Attributes:
        workload: What the consumer runs per step: a name (``emulated:20ms``,
            ``emulated-sync:20ms``, ``resnet18``, ``resnet50``, ``textcls``) or a
            :class:`~feedbench.pipelines.workloads.Workload` (picklable for isolated runs).
        device: "auto" (CUDA when there is one), "cpu", "cuda" or "cuda:N".
        steps: Measured steps; when neither `steps` nor `seconds` is given, 50.
        seconds: Measured seconds; with `steps` too, whichever ends first.
        warmup: Loader steps before the window, or "auto": twice the batches the loader makes
            ahead, plus 4, where the loader says how many (feedbench's do: workers x prefetch),
            else 5; so that a prefetch buffer draining cannot pass for throughput.
        timeout: Seconds to wait for any one batch before the run fails.
        cycle: Start a re-iterable loader again when it ends within the window.
        cpus: Isolated runs only: pin the run and its workers to this many CPUs (None: all
            this process may use). ``measure`` in the calling process never pins.
        limit_s: Isolated runs only: seconds the whole run may take, start-up included.
    """

    workload: Any = "emulated:20ms"
    device: str = "auto"
    steps: int | None = None
    seconds: float | None = None
    warmup: int | str = AUTO
    timeout: float = 120.0
    cycle: bool = True
    cpus: int | None = None
    limit_s: float = 600.0

    def __post_init__(self) -> None:
        if not isinstance(self.workload, Workload):
            object.__setattr__(self, "workload", check_workload(self.workload))
        object.__setattr__(self, "device", _check_device(self.device))
        if self.steps is not None:
            checks.whole_number("steps", self.steps, minimum=1)
        if self.seconds is not None:
            checks.positive_number("seconds", self.seconds)
        if self.steps is None and self.seconds is None:
            object.__setattr__(self, "steps", DEFAULT_STEPS)
        if self.warmup != AUTO:
            checks.whole_number("warmup", self.warmup, minimum=1,
                                hint="a number of steps >= 1 (the first batch warms the workload up) or 'auto'")
        checks.positive_number("timeout", self.timeout)
        checks.boolean("cycle", self.cycle)
        if self.cpus is not None:
            have = len(usable_cpus())
            checks.whole_number("cpus", self.cpus, minimum=1, maximum=have,
                                hint=f"1..{have} (the CPUs this process may use)")
        checks.positive_number("limit_s", self.limit_s)

    @property
    def workload_name(self) -> str:
        return self.workload.describe() if isinstance(self.workload, Workload) else self.workload

    def warmup_steps(self, batches_ahead: int | None) -> int:
        """The warm-up to run: `warmup`, or for "auto" 2 x `batches_ahead` + 4 (5 when unknown)."""
        if self.warmup != AUTO:
            return int(self.warmup)
        return FALLBACK_WARMUP if batches_ahead is None else auto_warmup(batches_ahead)

    def with_cpus(self) -> MeasureConfig:
        """This config with `cpus` set to a number (all usable CPUs for None), as a grid records it."""
        return self if self.cpus is not None else dataclasses.replace(self, cpus=len(usable_cpus()))

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values (a Workload object by its name)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["workload"] = self.workload_name
        return data


def auto_warmup(batches_ahead: int) -> int:
    """Warm-up steps that drain what a loader made ahead: 2 x `batches_ahead` + 4."""
    return 2 * batches_ahead + 4


def _check_device(device: Any) -> str:
    name = str(device).strip().lower()
    if name in ("auto", "cpu"):
        return name
    if name.startswith("cuda"):
        from feedbench.pipelines.loop.devices import resolve_device  # imports torch: only for a CUDA request

        resolve_device(name)
        return name
    raise ConfigError(f"device {device!r}: choose auto, cpu, cuda or cuda:N")


@dataclass(frozen=True)
class Option:
    """A command-line option that sets one field of MeasureConfig.

    Attributes:
        field: The MeasureConfig field.
        flag: The option's name after the prefix (``steps`` -> ``--steps``).
        type: Converts the text given (argparse and pytest call it).
        metavar: The value's name in help.
        help: What it sets; the default is added from MeasureConfig.
        default_text: How help states the default, where the field's own default says too little.
    """

    field: str
    flag: str
    type: Callable[[str], Any]
    metavar: str
    help: str
    default_text: str = ""


def parse_warmup(text: str) -> int | str:
    """--warmup's value: a number of steps or "auto"."""
    word = text.strip().lower()
    if word == AUTO:
        return AUTO
    try:
        return int(word)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of steps or auto, got {text!r}") from None


OPTIONS: tuple[Option, ...] = (
    Option("workload", "workload", str, "W",
           "the consumer's step: emulated:<time> (e.g. emulated:20ms), resnet18, resnet50 or textcls"),
    Option("device", "device", str, "D", "auto (CUDA when there is one), cpu, cuda or cuda:N"),
    Option("steps", "steps", int, "S", "measured steps per run", f"{DEFAULT_STEPS}, unless --seconds is given"),
    Option("seconds", "seconds", float, "T", "measured seconds per run (with --steps: whichever ends first)", "none"),
    Option("warmup", "warmup", parse_warmup, "N|auto",
           "loader steps before the window; auto: 2 x the batches the loader makes ahead + 4"),
    Option("timeout", "timeout", float, "S", "seconds to wait for any one batch before the run fails"),
    Option("cpus", "cpus", int, "K", "pin every run, its workers included, to K CPUs",
           "all this process may use"),
    Option("limit_s", "limit-s", float, "S", "kill a run that takes longer than this, start-up included"),
)


def add_options(addoption: Callable[..., Any], *, prefix: str = "", skip: Iterable[str] = ()) -> None:
    """Declares the options of :data:`OPTIONS` with `addoption` (argparse's ``add_argument`` or
    pytest's ``addoption``): ``--{prefix}{flag}``, stored as ``{prefix}{field}`` with dashes as
    underscores, default None (MeasureConfig's own default then applies; help states it).

    Args:
        addoption: The parser's function for adding an option.
        prefix: Put before each flag ("feedbench-" for pytest).
        skip: Fields to leave out (those that mean nothing where the options are added).
    """
    left_out = set(skip)
    for option in OPTIONS:
        name = option.field
        if name in left_out:
            continue
        default = option.default_text or str(MeasureConfig.__dataclass_fields__[name].default)
        addoption(f"--{prefix}{option.flag}", dest=f"{prefix}{name}".replace("-", "_"), type=option.type,
                  default=None, metavar=option.metavar, help=f"{option.help} (default: {default})")


def from_options(values: Mapping[str, Any], *, prefix: str = "", **fixed: Any) -> MeasureConfig:
    """The MeasureConfig that parsed options (:func:`add_options`) describe; `fixed` fields win.

    `values` maps option destinations to values (``vars(args)``); None means "not given".
    """
    given = {}
    for option in OPTIONS:
        name = option.field
        value = values.get(f"{prefix}{name}".replace("-", "_"))
        if value is not None:
            given[name] = value
    return MeasureConfig(**{**given, **fixed})
