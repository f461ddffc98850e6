"""The options that run, compare and sweep share (declared here once), and how they become
a grid's Settings and worker counts."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any, NoReturn

from feedbench.pipelines import registry
from feedbench.pipelines.core.checks import AUTOTUNE
from feedbench.pipelines.core.errors import ConfigError
from feedbench.pipelines.harness.plan import Settings
from feedbench.pipelines.loop.config import add_options, from_options

# Pipeline options that have a flag of their own; any other goes through --option KEY=VALUE.
FLAGS = {"batch_size": "--batch-size", "tokenizer": "--tokenizer", "service": "--service",
         "ray_address": "--ray-address"}
# Options whose check reads another option (shard_index < num_shards): checked with it, after it.
CHECKED_WITH = {"shard_index": ("num_shards",)}


def add_settings_options(parser: argparse.ArgumentParser) -> None:
    """The options of what is measured and how, shared by run, compare and sweep: the task, the
    data and the pipeline's options here; the measurement's from MeasureConfig's declarations."""
    group = parser.add_argument_group("what is measured, and how (the same for every run of a command)")
    group.add_argument("--task", required=True, help=f"the task: {', '.join(registry.tasks())}")
    group.add_argument("--data", required=True, metavar="PATH",
                       help="the dataset: an ImageFolder or Parquet shards (image); "
                            "a corpus folder, JSONL or Parquet (text)")
    group.add_argument("--batch-size", type=int, metavar="B", help="samples per batch (default: the pipeline's, 64)")
    group.add_argument("--tokenizer", help="text only: spacy, nltk or regex (default: the pipeline's, spacy)")
    group.add_argument("--option", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                       help="any other pipeline option, e.g. --option image_size=160 --option output=uint8 "
                            "(repeatable)")
    group.add_argument("--service", metavar="grpc://HOST:PORT",
                       help="tf-service only: an existing tf.data service dispatcher (default: a local one with "
                            "--workers worker processes, started and ended with each run)")
    group.add_argument("--ray-address", metavar="HOST:PORT",
                       help="ray only: an existing Ray cluster, HOST:PORT or ray://HOST:PORT (default: a local Ray "
                            "instance started and ended with each run, within --cpus)")
    add_options(group.add_argument, skip=("cycle",))


# Words that a shell user writes for the JSON values true, false and null.
_WORDS = {"true": True, "false": False, "null": None, "none": None}


def _key_value(text: str) -> tuple[str, Any]:
    """KEY=VALUE: the value as JSON where it parses (160, 0.5, "x"), true/false/null in any
    case (so that shuffle=False is False, not the word "False"), else the word itself (uint8)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"--option must look like KEY=VALUE, got {text!r}")
    if raw.strip().lower() in _WORDS:
        return key.strip(), _WORDS[raw.strip().lower()]
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw  # a plain word: uint8, spacy
    return key.strip(), value


def settings_from_args(args: argparse.Namespace, frameworks: Sequence[str]) -> Settings:
    """The Settings the shared options describe, checked against each framework's pipeline."""
    options = dict(args.option)
    for name, flag in FLAGS.items():
        if name in options:
            raise ConfigError(f"--option {name}=...: use {flag}")
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    settings = Settings(task=args.task, data=args.data, measure=from_options(vars(args)), options=options)
    # The tokenizer goes with every check: a backend may require one (tf-service: regex).
    base = {"workers": 0, **({"tokenizer": options["tokenizer"]} if "tokenizer" in options else {})}
    for framework in frameworks:
        try:
            registry.make_config(settings.task, framework, base)  # the framework itself first
        except ConfigError as exc:
            if "tokenizer" not in base or "unknown framework" in str(exc):
                raise
            raise ConfigError(f"--tokenizer {base['tokenizer']}: {exc}") from None
        for name, value in sorted(options.items(), key=lambda item: item[0] in CHECKED_WITH):
            read = {other: options[other] for other in CHECKED_WITH.get(name, ()) if other in options}
            try:
                registry.make_config(settings.task, framework, {**base, **read, name: value})
            except ConfigError as exc:
                raise ConfigError(f"{FLAGS.get(name, '--option ' + name)} {value}: {exc}") from None
    for name in options:
        taken = registry.takers(settings.task, name)
        if taken and not set(taken) & set(frameworks):
            raise ConfigError(f"{FLAGS.get(name, '--option ' + name)} is for {', '.join(taken)}, "
                              f"which this command does not run ({', '.join(frameworks)})")
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


FRAMEWORKS_HELP = ("comma-separated: torch, tf, or a contender: torch-threads, torch-gpu, dali (image) "
                   "(docs/contenders.md); or a disaggregated one: tf-service, ray (docs/scale-out.md) "
                   "(default: torch,tf)")
