"""What ``feedbench capacity`` writes: capacity.json (the settings, every N measured with every
rank's result, each framework's score; written again after every N, "complete" at the end),
capacity.png (each rank's AU against N, a panel per framework, the target as a line) and
capacity.md (the scores side by side, a table per framework, the straggler, the memory of the
whole tree). Every file is written whole or not at all.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from feedbench.pipelines.core.errors import ConfigError
from feedbench.pipelines.core.files import write_atomically, write_text_atomically
from feedbench.pipelines.harness.capacity_search import CAPACITY_JSON, Capacity, Point
from feedbench.pipelines.harness.report.table import fmt_bytes

CAPACITY_PNG, CAPACITY_MD = "capacity.png", "capacity.md"


def write_record(out: Path, data: Mapping[str, Any]) -> Path:
    path = out / CAPACITY_JSON
    write_text_atomically(path, json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")
    return path


def read_record(out: Path) -> dict[str, Any] | None:
    path = out / CAPACITY_JSON
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def score_words(score: float) -> str:
    """4 -> "4"; 0.31 -> "0.31" (a share of one accelerator)."""
    if math.isnan(score):
        return "unknown"
    return f"{score:.0f}" if score >= 1 else f"{score:.2f}"


def headline(framework: str, found: Capacity, accelerator: str, cpus: int) -> str:
    if found.score < 1:
        return f"on these {cpus} CPUs, {framework} feeds {score_words(found.score)} of one emulated {accelerator}"
    return (f"on these {cpus} CPUs, {framework} feeds {score_words(found.score)} emulated {accelerator}"
            f" accelerator{'s' if found.score != 1 else ''} at the target AU")


def _figure(points_by_framework: Mapping[str, Sequence[Point]], target_au: float, title: str) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(points_by_framework)
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(5.2 * max(1, len(names)), 4.2), squeeze=False,
                             sharey=True)
    for ax, name in zip(axes[0], names, strict=False):
        points = sorted(points_by_framework[name], key=lambda p: p.ranks)
        for point in points:
            aus = [r.accelerator_utilization if r.ok else 0.0 for r in point.run.results]
            ax.scatter([point.ranks] * len(aus), aus, s=28, alpha=0.8,
                       color="#2ca02c" if point.holds else "#d62728", zorder=3)
            if point.straggler is not None:
                ax.annotate(f"rank {point.straggler}", (point.ranks, min(aus)), textcoords="offset points",
                            xytext=(6, -10), fontsize=7)
        ax.plot([p.ranks for p in points], [p.min_au for p in points], color="#555555", lw=1, zorder=2,
                label="straggler's AU")
        ax.axhline(target_au, color="#1f77b4", ls="--", lw=1, label=f"target AU {target_au:.2f}")
        ax.set_title(name)
        ax.set_xlabel("emulated accelerators at once (N)")
        ax.set_xticks(sorted({p.ranks for p in points}))
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("each rank's AU (green: every rank holds the target)")
    axes[0][0].legend(loc="lower left", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def draw(out: Path, points_by_framework: Mapping[str, Sequence[Point]], target_au: float, title: str) -> Path:
    import matplotlib.pyplot as plt

    fig = _figure(points_by_framework, target_au, title)
    path = out / CAPACITY_PNG
    try:
        write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    finally:
        plt.close(fig)
    return path


def _pct(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.2f}"


def _framework_section(framework: str, found: Capacity, header: Mapping[str, Any]) -> list[str]:
    lines = [f"## {framework}", "", f"**Capacity: {score_words(found.score)}** - {found.reason}.", ""]
    if found.predicted is not None:
        lines += [f"Predicted from N = 1 (its CPU seconds a sample against the budget): {found.predicted}.", ""]
    lines += ["| N | workers each | holds | each rank's AU | straggler | starvation (max) | samples/s in all | "
              "peak RSS (tree) | peak PSS (tree) | contention |", "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|"]
    for point in sorted(found.points, key=lambda p: p.ranks):
        results = point.run.results
        aus = ", ".join(f"{r.accelerator_utilization:.2f}" if r.ok else "failed" for r in results)
        starvation = max((r.starvation for r in results if r.ok), default=math.nan)
        tuned = (" (tried " + ", ".join(f"{w}: AU {au:.2f}" for w, au, _ in point.tuning) + ")"
                 if len(point.tuning) > 1 else "")
        lines.append(f"| {point.ranks} | {point.workers}{tuned} | {'yes' if point.holds else 'no'} | {aus} | "
                     f"{point.straggler} | {_pct(starvation)} | {point.samples_per_s:,.1f} | "
                     f"{fmt_bytes(point.run.peak_rss_bytes)} | {fmt_bytes(point.run.peak_pss_bytes)} | "
                     f"{_pct(point.run.contention)} |")
        for rank, result in enumerate(results):
            if not result.ok:
                lines.append(f"|  |  |  | rank {rank} failed: {result.error} | | | | | | |")
    lines.append("")
    return lines


def markdown(header: Mapping[str, Any], found: Mapping[str, Capacity], command: str) -> str:
    accelerator = header["plan"]["accelerator"]
    cpus = header["settings"]["cpus"]
    lines = ["# How many accelerators these CPUs feed", "",
             f"`{command}`", "",
             f"Each emulated accelerator ({accelerator['name']}: batch {accelerator['batch_size']} in "
             f"{accelerator['step_s'] * 1e3:g} ms; {accelerator['source']}) is a rank in its own process with its "
             f"own loader over its shard of the data; all ranks share {cpus} CPU(s) and open their windows together. "
             f"The score is the largest N at which every rank holds AU {header['plan']['target_au']:.2f}; below one, "
             "the AU one accelerator alone reached.", "",
             "| framework | capacity | N measured |", "|---|---:|---|"]
    for framework, one in found.items():
        lines.append(f"| {framework} | **{score_words(one.score)}** | "
                     f"{', '.join(str(p.ranks) for p in one.points)} |")
    lines += ["", f"![each rank's AU against N]({CAPACITY_PNG})", ""]
    for framework, one in found.items():
        lines += _framework_section(framework, one, header)
    notes = [f"- {framework}: the run of N={p.ranks} shared its CPUs with other processes (contention "
             f"{p.run.contention:.2f}): its AU may be low for that reason" for framework, one in found.items()
             for p in one.points if not math.isnan(p.run.contention) and p.run.contention > 0.05]
    if notes:
        lines += ["## Notes", "", *notes, ""]
    return "\n".join(lines)


def write_all(out: Path, header: Mapping[str, Any], found: Mapping[str, Capacity], command: str) -> list[Path]:
    accelerator = header["plan"]["accelerator"]
    title = (f"{header['settings']['task']} on {header['settings']['cpus']} CPU(s): emulated {accelerator['name']} "
             f"(batch {accelerator['batch_size']} in {accelerator['step_s'] * 1e3:g} ms)")
    png = draw(out, {f: one.points for f, one in found.items()}, header["plan"]["target_au"], title)
    md = out / CAPACITY_MD
    write_text_atomically(md, markdown(header, found, command) + "\n")
    return [png, md]


def redraw(out: Path) -> list[Path]:
    """capacity.png and capacity.md again from capacity.json (the scores read again from its points)."""
    data = read_record(out)
    if data is None:
        raise ConfigError(f"{out / CAPACITY_JSON}: no such file")
    found = {}
    for framework, points in data["points"].items():
        saved = data.get("capacity", {}).get(framework, {})
        score = saved.get("score")
        found[framework] = Capacity(math.nan if score is None else score, tuple(Point.from_dict(p) for p in points),
                                    saved.get("predicted"), saved.get("reason", "not finished"))
    return write_all(out, data, found, data.get("command", ""))
