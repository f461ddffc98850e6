"""What ``feedbench explain`` writes: stages.json (everything, the runs included), stages.parquet
(one row per framework x stage), stages.png (milliseconds per sample by stage, the frameworks
side by side), ceilings.png and explain.md (the bottleneck in sentences, computed from the
numbers). Every file is written whole or not at all.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from feedbench.pipelines.core.files import write_atomically, write_text_atomically
from feedbench.pipelines.harness import attribution
from feedbench.pipelines.harness.attribution import FrameworkExplanation

STAGES_JSON, STAGES_PARQUET = "stages.json", "stages.parquet"
STAGES_PNG, CEILINGS_PNG, EXPLAIN_MD = "stages.png", "ceilings.png", "explain.md"
STAGE_COLORS = {"read": "#8c564b", "decode": "#1f77b4", "transform": "#ff7f0e", "tokenize": "#1f77b4",
                "encode": "#ff7f0e", "batch": "#2ca02c", "deliver": "#d62728", "copy": "#9467bd", "step": "#7f7f7f"}
CEILING_WORDS = {"workload": "workload alone", "replay": "replayed from memory", "warm": "pipeline, warm",
                 "cold": "pipeline, cold pages"}


def record(header: Mapping[str, Any], found: Sequence[FrameworkExplanation], runs: Sequence[Mapping[str, Any]],
           *, complete: bool) -> dict[str, Any]:
    """The content of stages.json: the header (settings, plan, machine), each framework's
    explanation and every run, and whether it is complete (False while runs remain, or after
    an interruption)."""
    return {**header, "complete": complete, "frameworks": [f.to_dict() for f in found], "runs": list(runs)}


def write_record(out: Path, data: Mapping[str, Any]) -> Path:
    path = out / STAGES_JSON
    write_text_atomically(path, json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")
    return path


def stage_rows(found: Sequence[FrameworkExplanation]) -> list[dict[str, Any]]:
    """One row per framework x stage."""
    return [{"framework": s.framework, "stage": s.stage, "side": s.side, "seconds_per_sample": s.seconds_per_sample,
             "ms_per_sample": s.seconds_per_sample * 1e3, "share": s.share, "spread_s": s.spread_s,
             "method": s.method} for f in found for s in f.stages]


def write_parquet(out: Path, found: Sequence[FrameworkExplanation]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("framework", pa.string()), ("stage", pa.string()), ("side", pa.string()),
                        ("seconds_per_sample", pa.float64()), ("ms_per_sample", pa.float64()),
                        ("share", pa.float64()), ("spread_s", pa.float64()), ("method", pa.string())])
    table = pa.Table.from_pylist(stage_rows(found), schema=schema)
    path = out / STAGES_PARQUET
    write_atomically(path, lambda tmp: pq.write_table(table, tmp))
    return path


def _stage_figure(found: Sequence[FrameworkExplanation], title: str) -> Any:
    """Stacked bars: per framework, the pipeline's stages on one CPU, and beside it the
    consumer's copy and step per sample (which run beside the workers, not after them)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(max(8.0, 2.6 * len(found) + 2.5), 5.0), layout="constrained")  # the title fits
    ax = figure.subplots()
    ticks, labels, seen = [], [], set()
    for index, one in enumerate(found):
        for offset, side, word in ((-0.2, "pipeline", "pipeline\n(1 CPU)"), (0.22, "consumer", "consumer")):
            x, bottom = index * 1.2 + offset, 0.0
            width = 0.38 if side == "pipeline" else 0.3
            for stage in (s for s in one.stages if s.side == side):
                height = max(stage.seconds_per_sample, 0.0) * 1e3
                ax.bar(x, height, width, bottom=bottom, color=STAGE_COLORS.get(stage.stage, "#bcbd22"),
                       hatch="//" if side == "consumer" else None, edgecolor="white",
                       label=stage.stage if stage.stage not in seen else None)
                seen.add(stage.stage)
                if height > 0.06 * max(one.one_worker_s * 1e3, 1e-9):
                    ax.text(x, bottom + height / 2, f"{stage.stage} {height:.2f}", ha="center", va="center",
                            fontsize=8, color="white")
                bottom += height
            ticks.append(x)
            labels.append(f"{one.framework}\n{word}")
    ax.set_xticks(ticks, labels, fontsize=8)
    ax.set_ylabel("milliseconds per sample")
    ax.set_title("Where a sample's time goes (stages measured as differences of prefixes)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    figure.suptitle(title)
    return figure


def _ceiling_figure(found: Sequence[FrameworkExplanation], title: str, workers: int) -> Any:
    """Grouped bars of samples/s: the ceilings, and one worker's rate, per framework."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9.0, 4.6), layout="constrained")
    ax = figure.subplots()
    names = [*attribution.CEILINGS, "one worker"]
    width = 0.8 / max(len(found), 1)
    colors = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")
    for k, (one, color) in enumerate(zip(found, colors)):
        values = []
        for name in names:
            if name == "one worker":
                values.append(1.0 / one.one_worker_s if one.one_worker_s > 0 else math.nan)
            else:
                ceiling = one.ceiling(name)
                values.append(ceiling.samples_per_s if ceiling and ceiling.ok else math.nan)
        xs = [i + (k - (len(found) - 1) / 2) * width for i in range(len(names))]
        ax.bar(xs, [0 if math.isnan(v) else v for v in values], width, color=color, label=one.framework)
        for x, value in zip(xs, values):
            ax.text(x, 0 if math.isnan(value) else value, "n/a" if math.isnan(value) else f"{value:,.0f}",
                    ha="center", va="bottom", fontsize=8)
    at = f"\n({workers} worker{'s' if workers != 1 else ''})"
    words = [CEILING_WORDS[n] + (at if n != "workload" else "") if n in CEILING_WORDS else "one worker\n(1 CPU)"
             for n in names]
    ax.set_xticks(range(len(names)), words, fontsize=8)
    ax.set_ylabel("samples/s through the consumer loop")
    ax.set_title("Ceilings: what each part allows")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    figure.suptitle(title)
    return figure


def draw(out: Path, found: Sequence[FrameworkExplanation], title: str, workers: int) -> list[Path]:
    """Writes stages.png and ceilings.png; returns their paths."""
    paths = [out / STAGES_PNG, out / CEILINGS_PNG]
    for figure, path in zip((_stage_figure(found, title), _ceiling_figure(found, title, workers)), paths):
        write_atomically(path, lambda tmp, figure=figure: figure.savefig(tmp, dpi=100, format="png"))
    return paths


def _ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1e3:.3f}"


def _framework_section(one: FrameworkExplanation) -> list[str]:
    lines = [f"## {one.label} ({one.framework})", "", attribution.bottleneck_sentence(one), ""]
    feeding = attribution.feeding_sentence(one)
    if feeding:
        lines += [feeding, ""]
    lines += ["Share: of the one-worker cost for the pipeline's stages; of the warm run's time per sample for the "
              "consumer's (copy and step run beside the workers, not after them).", "",
              "| stage | side | ms per sample | share | +- ms | how it was measured |", "|---|---|---:|---:|---:|---|"]
    for s in one.stages:
        share = "n/a" if math.isnan(s.share) else f"{s.share:.0%}"
        lines.append(f"| {s.stage} | {s.side} | {_ms(s.seconds_per_sample)} | {share} | {_ms(s.spread_s)} | "
                     f"{s.method} |")
    total = _ms(one.one_worker_s)
    lines += [f"| **one worker** | pipeline | **{total}** | 100% | | the sum of the pipeline's stages |",
              "", "Ceilings (samples/s through the consumer loop):", "",
              "| ceiling | samples/s | AU | how it was measured |", "|---|---:|---:|---|"]
    for c in one.ceilings:
        rate = f"{c.samples_per_s:,.0f}" if c.ok else "n/a"
        au = f"{c.accelerator_utilization:.2f}" if c.ok else ""
        note = f" ({c.note})" if c.note else ""
        lines.append(f"| {CEILING_WORDS[c.name]} | {rate} | {au} | {c.method}{note} |")
    if one.needed is not None:
        n = one.needed
        lines += ["", f"Workers for AU {n.target_au:.2f}: **{n.workers}** = ceil({n.target_au:.2f} x "
                  f"{n.demand_samples_per_s:,.0f} samples/s x {n.one_worker_s * 1e3:.3f} ms); {n.explanation}."]
    if one.autotune or one.autotune_note:
        lines += ["", "What tf.data's AUTOTUNE chose (workers and prefetch autotune, from the profiler's events):", ""]
        if one.autotune:
            lines += ["| op | parameter | median | range | events |", "|---|---|---:|---|---:|"]
            lines += [f"| {c['op']} | {c['parameter']} | {c['median']:g} | {c['low']:g}-{c['high']:g} | {c['events']} |"
                      for c in one.autotune]
        if one.autotune_note:
            lines.append(f"({one.autotune_note})")
    if one.notes:
        lines += ["", "Notes:", "", *(f"- {note}" for note in one.notes)]
    return [*lines, ""]


def run_device(runs: Sequence[Mapping[str, Any]], asked: str) -> str:
    """The device the ceilings ran on ("auto" resolved), from the first ceiling run that has one."""
    return next((r["device"] for r in runs if r.get("role") in CEILING_WORDS and r.get("device")), asked)


def markdown(header: Mapping[str, Any], found: Sequence[FrameworkExplanation], command: str, device: str) -> str:
    """explain.md: the bottleneck of each framework in sentences, the tables, the plots."""
    settings = header["settings"]
    plan = header["plan"]
    lines = ["# Why it starves: stage attribution", "",
             f"Task {settings['task']} over `{settings['data']}`, workload {settings['workload']} on "
             f"{device}, {plan['cpus']} CPU(s) and {plan['workers']} worker(s) for the ceilings; stages measured on "
             "one CPU "
             f"({plan['repeats']} run(s) each, the median). Command: `{command}`.", "",
             "Definitions and limits: docs/explain.md in the feedbench repository. A stage is the difference "
             "between two prefixes of the pipeline, so a stage that costs nothing can come out slightly below 0.",
             "", f"![stages]({STAGES_PNG})", "", f"![ceilings]({CEILINGS_PNG})", ""]
    for one in found:
        lines += _framework_section(one)
    return "\n".join(lines)


def write_all(out: Path, header: Mapping[str, Any], found: Sequence[FrameworkExplanation],
              runs: Sequence[Mapping[str, Any]], command: str) -> list[Path]:
    """Writes every file of a finished explanation; returns their paths."""
    paths = [write_record(out, record(header, found, runs, complete=True)), write_parquet(out, found)]
    settings = header["settings"]
    device = run_device(runs, settings["device"])
    paths += draw(out, found, f"{settings['task']}: {', '.join(f.framework for f in found)}, "
                              f"{settings['workload']} on {device}", header["plan"]["workers"])
    path = out / EXPLAIN_MD
    write_text_atomically(path, markdown(header, found, command, device) + "\n")
    return [*paths, path]


def redraw(out: Path) -> list[Path]:
    """Draws stages.parquet, the plots and explain.md again from out/stages.json (of the
    frameworks finished, where the run was interrupted)."""
    from feedbench.pipelines.core.errors import DatasetError

    path = out / STAGES_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        found = [FrameworkExplanation.from_dict(one) for one in data["frameworks"]]
        header = {key: data[key] for key in ("command", "settings", "plan", "machine")}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{path}: not an explanation feedbench wrote ({type(exc).__name__}: {exc})") from None
    if not found:
        raise DatasetError(f"{path}: no framework was explained before the run stopped")
    paths = [write_parquet(out, found)]
    settings = header["settings"]
    device = run_device(data["runs"], settings["device"])
    paths += draw(out, found, f"{settings['task']}: {', '.join(f.framework for f in found)}, "
                              f"{settings['workload']} on {device}", header["plan"]["workers"])
    md = out / EXPLAIN_MD
    write_text_atomically(md, markdown(header, found, header["command"], device) + "\n")
    return [*paths, md]
