"""report.md: verdict, table, plots, sweep recommendations, settings and machine."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from feedbench.pipelines.core.files import write_text_atomically
from feedbench.pipelines.harness.report.plots import (
    MEMORY_PNG,
    THROUGHPUT_PNG,
    draw_plots,
)
from feedbench.pipelines.harness.report.table import (
    COLUMNS,
    Row,
    fmt_bytes,
    sorted_rows,
    table_cells,
    title_of,
)
from feedbench.pipelines.harness.report.verdict import au_targets, verdict

log = logging.getLogger(__name__)

REPORT_MD = "report.md"


def _markdown_table(rows: Sequence[Row]) -> list[str]:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in table_cells(row)) + " |"
              for row in sorted_rows(rows)]
    return lines


def _facts(rows: Sequence[Row]) -> list[str]:
    first = rows[0]
    keys = ["cpu_model", "cpu_cores", "cpus_usable", "memory_bytes", "gpu", "python", "platform",
            *sorted(k for k in first if k.endswith("_version"))]
    shown = {k: first.get(k) for k in keys}
    if shown["memory_bytes"]:
        shown["memory_bytes"] = fmt_bytes(shown["memory_bytes"])
    return [f"- {k}: {'-' if v is None else v}" for k, v in shown.items()]


def write_report(out: Path, rows: Sequence[Row], recommendations: Sequence[Mapping[str, Any]] = ()) -> Path:
    """Writes out/report.md: verdict, table, plots, recommendations, settings and machine."""
    frameworks = " vs ".join(sorted({r["framework"] for r in rows}))
    settings = rows[0].get("settings", {})
    lines = [f"# feedbench: {settings.get('task', '?')}, {frameworks}", "",
             f"{title_of(rows)}; {len(rows)} runs, each in a fresh process pinned to the same CPUs.", "",
             "## Verdict", "", *(f"- {line}" for line in verdict(rows, au_targets(recommendations))), "",
             "## Results", "", *_markdown_table(rows), "",
             f"![throughput and starvation against workers]({THROUGHPUT_PNG})", "",
             f"![peak memory against workers]({MEMORY_PNG})", ""]
    lines += _explanation(out)
    lines += _capacity(out)
    for recommendation in recommendations:
        lines += [f"## Sweep: {recommendation.get('framework', '?')}", "", "```",
                  *recommendation.get("lines", []), "```", ""]
    lines += ["## Settings", "", "```json", json.dumps(settings, indent=1, sort_keys=True), "```", "",
              "## Machine", "", *_facts(rows), ""]
    path = out / REPORT_MD
    write_text_atomically(path, "\n".join(lines))
    return path


EXPLAIN_DIR = "explain"  # where the demo puts `feedbench explain`'s files beside a comparison


def _explanation(out: Path) -> list[str]:
    """A section linking out/explain/explain.md, with its bottleneck sentences, where there is one."""
    from feedbench.pipelines.harness import attribution
    from feedbench.pipelines.harness.report import explain

    path = out / EXPLAIN_DIR / explain.STAGES_JSON
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        found = [attribution.FrameworkExplanation.from_dict(one) for one in data["frameworks"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s: not a readable explanation, left out of the report (%s)", path, exc)
        return []
    return ["## Why it starves", "", *(f"- {attribution.bottleneck_sentence(one)}" for one in found), "",
            f"Each stage's cost, the ceilings and the workers needed: [{EXPLAIN_DIR}/{explain.EXPLAIN_MD}]"
            f"({EXPLAIN_DIR}/{explain.EXPLAIN_MD}).", ""]


CAPACITY_DIR = "capacity"  # where compare --capacity puts `feedbench capacity`'s files beside a comparison


def _capacity(out: Path) -> list[str]:
    """A section with each framework's capacity side by side, linking out/capacity/capacity.md."""
    from feedbench.pipelines.harness.report import capacity

    data = None
    path = out / CAPACITY_DIR / capacity.CAPACITY_JSON
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            scores = {f: c["score"] for f, c in data["capacity"].items()}
            accelerator, cpus = data["plan"]["accelerator"]["name"], data["settings"]["cpus"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s: not a readable capacity run, left out of the report (%s)", path, exc)
            data = None
    if data is None:
        return []
    lines = ["## How many accelerators these CPUs feed", "",
             f"Emulated {accelerator} accelerators fed at once at AU {data['plan']['target_au']:.2f} or more on every "
             f"rank, on these {cpus} CPU(s) (below one: the AU one accelerator alone reached):", "",
             "| framework | capacity |", "|---|---:|"]
    lines += [f"| {f} | {capacity.score_words(math.nan if s is None else s)} |" for f, s in scores.items()]
    return [*lines, "", f"Each rank's AU at every N: [{CAPACITY_DIR}/{capacity.CAPACITY_MD}]"
            f"({CAPACITY_DIR}/{capacity.CAPACITY_MD}).", ""]


def recommendations(out: Path) -> list[dict[str, Any]]:
    """The sweep recommendations saved in `out` (recommendation-<framework>.json)."""
    found = []
    for path in sorted(out.glob("recommendation-*.json")):
        try:
            found.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as exc:  # a stray file: the report goes on without it
            log.warning("%s: not a readable recommendation, left out of the report (%s)", path, exc)
    return found


def render(out: Path, rows: Sequence[Row]) -> list[Path]:
    """Draws the plots and writes report.md for the rows of `out`; returns the paths."""
    return [*draw_plots(rows, out), write_report(out, rows, recommendations(out))]
