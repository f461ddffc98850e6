"""What a grid of results says: a table, plots, a verdict computed from the numbers, report.md.

Everything here reads results rows (see :mod:`feedbench.pipelines.harness.grid`), so a report
can be drawn again from a saved folder at any time: :mod:`.table` (the table and the words
every part shares), :mod:`.verdict`, :mod:`.plots` and :mod:`.markdown` (report.md, and
:func:`render`, which draws the plots and writes it).
"""

from feedbench.pipelines.harness.report.markdown import REPORT_MD, recommendations, render, write_report
from feedbench.pipelines.harness.report.plots import COLORS, MEMORY_PNG, THROUGHPUT_PNG, draw_plots, figures
from feedbench.pipelines.harness.report.table import COLUMNS, context_of, describe, results_table, table_cells, title_of
from feedbench.pipelines.harness.report.verdict import AU_TARGET, SAME_WITHIN, au_targets, verdict

__all__ = [
    "AU_TARGET",
    "COLORS",
    "COLUMNS",
    "MEMORY_PNG",
    "REPORT_MD",
    "SAME_WITHIN",
    "THROUGHPUT_PNG",
    "au_targets",
    "context_of",
    "describe",
    "draw_plots",
    "figures",
    "recommendations",
    "render",
    "results_table",
    "table_cells",
    "title_of",
    "verdict",
    "write_report",
]
