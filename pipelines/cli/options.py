"""The options that run, compare and sweep share (declared here once), and how they become
a grid's Settings and worker counts."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any, NoReturn

from feedbench.pipelines import registry
from feedbench.pipelines.core.errors import ConfigError
from feedbench.pipelines.harness.plan import AUTOTUNE, Settings

# Pipeline options that have a flag of their own; any other goes through --option KEY=VALUE.
FLAGS = {"batch_size": "--batch-size", "tokenizer": "--tokenizer"}


def add_settings_options(parser: argparse.ArgumentParser) -> None:
    """The options of what is measured and how, shared by run, compare and sweep."""
    group = parser.add_argument_group("what is measured, and how (the same for every run of a command)")
    group.add_argument("--task", required=True, help=f"the task: {', '.join(registry.tasks())}")
    group.add_argument("--data", required=True, metavar="PATH",
                       help="the dataset: an ImageFolder or Parquet shards (image); a corpus folder, JSONL or Parquet (text)")
    group.add_argument("--batch-size", type=int, metavar="B", help="samples per batch (default: the pipeline's, 64)")
    group.add_argument("--workload", default="emulated:20ms",
                       help="the consumer's step: emulated:<time> (e.g. emulated:20ms), resnet18, resnet50 or textcls "
                       "(default emulated:20ms)")
    group.add_argument("--device", default="auto", help="auto (CUDA when there is one), cpu, cuda or cuda:N (default auto)")
    group.add_argument("--cpus", type=int, metavar="K",
                       help="pin every run, its workers included, to K CPUs (default: all this process may use)")
    window = group.add_mutually_exclusive_group()
    window.add_argument("--steps", type=int, metavar="S", help="measured steps per run (default 50)")
    window.add_argument("--seconds", type=float, metavar="T", help="measured seconds per run, instead of --steps")
    group.add_argument("--warmup", default="auto", metavar="N|auto",
                       help="loader steps before the window (default auto: 2 x workers x prefetch + 4)")
    group.add_argument("--tokenizer", help="text only: spacy, nltk or regex (default: the pipeline's, spacy)")
    group.add_argument("--option", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                       help="any other pipeline option, e.g. --option image_size=160 --option output=uint8 (repeatable)")
    group.add_argument("--limit-s", type=float, default=600.0, metavar="S",
                       help="kill a run that takes longer than this, start-up included (default 600)")


def _key_value(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"--option must look like KEY=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw  # a plain word: uint8, spacy
    return key.strip(), value


def _warmup(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"--warmup must be a number of steps or auto, got {text!r}") from None


def settings_from_args(args: argparse.Namespace, frameworks: Sequence[str]) -> Settings:
    """The Settings the shared options describe, checked against each framework's pipeline."""
    options = dict(args.option)
    for name, flag in FLAGS.items():
        if name in options:
            raise ConfigError(f"--option {name}=...: use {flag}")
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    settings = Settings(task=args.task, data=args.data, workload=args.workload, device=args.device, cpus=args.cpus,
                        steps=args.steps, seconds=args.seconds, warmup=_warmup(args.warmup), limit_s=args.limit_s,
                        options=options)
    for framework in frameworks:
        registry.make_config(settings.task, framework, {"workers": 0})  # the framework itself first
        for name, value in options.items():
            try:
                registry.make_config(settings.task, framework, {name: value, "workers": 0})
            except ConfigError as exc:
                raise ConfigError(f"{FLAGS.get(name, '--option ' + name)} {value}: {exc}") from None
    settings.check_frameworks(frameworks)
    return settings


def default_workers(cpus: int) -> int:
    """One worker per CPU of the budget, less one for the consumer, at least 1."""
    return max(1, cpus - 1)


def parse_workers(text: str, flag: str = "--workers") -> int | str:
    """A worker count (an integer >= 0) or "autotune"."""
    word = text.strip().lower()
    if word == AUTOTUNE:
        return word
    try:
        count = int(word)
    except ValueError:
        count = -1
    if count < 0:
        raise ConfigError(f"{flag} takes integers >= 0 or autotune, got {text!r}")
    return count


def check_retry(args: argparse.Namespace) -> None:
    """--retry-failed only makes sense with --resume: there are no failed cells to retry otherwise."""
    if args.retry_failed and not args.resume:
        raise ConfigError("--retry-failed needs --resume (it runs the failed cells of saved results again)")


def one_line_errors(parser: argparse.ArgumentParser) -> None:
    """Makes `parser` report a usage error in one line (name, message, where help is)."""

    def error(message: str) -> NoReturn:
        parser.exit(2, f"{parser.prog}: error: {message} (see {parser.prog} --help)\n")

    parser.error = error  # type: ignore[method-assign]
