"""report: the verdict follows the numbers, the plots show them, report.md holds it all."""

import numpy as np
import pytest
from matplotlib.image import imread
from rich.console import Console

from feedbench.pipelines import RunResult
from feedbench.pipelines.harness import report, sweep
from feedbench.pipelines.harness.grid import make_row
from feedbench.pipelines.harness.plan import Cell, Settings
from feedbench.pipelines.loop.config import MeasureConfig


@pytest.fixture(scope="module")
def settings(small_folder):
    return Settings(task="image", data=small_folder.root,
                    measure=MeasureConfig(workload="emulated:20ms", device="cpu", cpus=1, steps=40))


def row(settings, framework, workers, rate, *, starvation=0.5, pss=1e9, ok=True, window=5.0, au=0.5, epochs=1,
        contention=0.0):
    result = (RunResult(samples_per_s=rate, batches_per_s=rate / 32, starvation=starvation, accelerator_utilization=au,
                        contention=contention,
                        steps=40, window_s=window, epochs=epochs, peak_pss_bytes=int(pss),
                        peak_rss_bytes=int(pss * 1.5), device="cpu", cpu_util=1.0, ttfb_s=0.5, wait_p95_s=0.01)
              if ok else RunResult.failed("the run's process was killed by SIGKILL (out of memory?) "
                                          "before it reported"))
    return make_row(settings, Cell(framework, workers), result, command="test", started_at="t", wall_s=9.0)


def rgb(colour):
    return np.array([int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])


def grid_rows(settings, torch_rates, tf_rates):
    return ([row(settings, "torch", w, r, pss=2e9) for w, r in torch_rates.items()]
            + [row(settings, "tf", w, r, pss=1.5e9) for w, r in tf_rates.items()])


def test_the_verdict_names_the_framework_the_numbers_favour(settings):
    lines = report.verdict(grid_rows(settings, {1: 100.0, 2: 240.0}, {1: 150.0, 2: 120.0}))
    assert lines[0] == ("torch fed the consumer better at an equal CPU budget (1 CPU per run): its best, 240.0 "
                        "samples/s at 2 workers, is 60% above tf's best, 150.0 samples/s at 1 worker (1.60x).")
    assert "tf used 25% less than torch" in lines[1]
    assert any(line.startswith("workers=1: tf 150.0, torch 100.0 samples/s: tf ahead by 50% (starvation 0.50 vs 0.50, "
                               "peak PSS 1.50 GB vs 2.00 GB)") for line in lines)
    assert any(line.startswith("workers=2: torch 240.0, tf 120.0 samples/s: torch ahead by 100%") for line in lines)
    assert ("Of the 2 worker counts measured for every framework, ahead by 5% or more: "
            "tf at 1 of them, torch at 1 of them.") in lines


def test_swapped_numbers_swap_the_verdict(settings):
    lines = report.verdict(grid_rows(settings, {1: 150.0, 2: 120.0}, {1: 100.0, 2: 240.0}))
    assert lines[0].startswith("tf fed the consumer better") and "above torch's best, 150.0" in lines[0]


def test_close_figures_are_no_clear_winner(settings):
    lines = report.verdict(grid_rows(settings, {2: 200.0}, {2: 196.0}))
    assert lines[0].startswith("No clear winner at an equal CPU budget (1 CPU per run): the best throughputs are "
                               "within 5% of each other")
    assert lines[3].startswith("workers=2: torch 200.0, tf 196.0 samples/s: within 5%: even")


def test_failed_runs_single_framework_and_short_windows_are_said(settings):
    rows = [row(settings, "torch", 1, 80.0, window=0.5), row(settings, "torch", 2, 0, ok=False),
            row(settings, "tf", 1, 0, ok=False)]
    lines = report.verdict(rows)
    assert lines[0].startswith("Only torch has results: its best is 80.0 samples/s at 1 worker")
    assert "2 of 3 runs failed; their reasons are in the table." in lines
    assert any("shorter than 2 s (shortest 0.50 s)" in line for line in lines)
    assert report.verdict([row(settings, "tf", 1, 0, ok=False)])[0] == "No run succeeded, so nothing can be compared."


def test_kept_busy_is_the_fewest_workers_reaching_the_target(settings):
    rows = [row(settings, "torch", w, 100.0 * w, au=au) for w, au in ((1, 0.5), (2, 0.92), (4, 0.95))]
    rows.append(row(settings, "tf", "autotune", 90.0, au=0.91))
    line = [line for line in report.verdict(rows) if line.startswith("Fewest workers")][0]
    assert line == "Fewest workers that kept the consumer busy (AU >= 0.9): tf at AUTOTUNE; torch at 2 workers."


def test_table_shows_every_run_and_failures_with_their_reason(settings):
    rows = grid_rows(settings, {0: 50.0, 1: 100.0}, {1: 90.0}) + [row(settings, "tf", "autotune", 0, ok=False)]
    console = Console(width=200, record=True)
    console.print(report.results_table(rows, report.title_of(rows)))
    text = console.export_text()
    assert "image: emulated:20ms on cpu, 1 CPU per run" in text
    assert text.count("│ torch") == 2 and text.count("│ tf ") == 2
    assert "FAILED: the run's process was killed by SIGKILL" in text and "2000" in text  # PSS in MB


def test_plots_are_drawn_with_one_line_per_framework(settings, tmp_path):
    rows = grid_rows(settings, {0: 50.0, 1: 100.0, 2: 180.0}, {0: 40.0, 1: 90.0, 2: 200.0})
    rows.append(row(settings, "tf", "autotune", 190.0))
    paths = report.draw_plots(rows, tmp_path)
    assert [p.name for p in paths] == ["throughput.png", "memory.png"]
    for path in paths:
        image = imread(path)
        assert image.shape[0] > 300 and image.shape[1] > 500
        pixels = image[..., :3].reshape(-1, 3)
        drawn = [(np.abs(pixels - rgb(colour)).max(axis=1) < 0.03).sum() for colour in report.COLORS[:3]]
        # each framework's line in its own colour, and no third series
        assert drawn[0] > 300 and drawn[1] > 300 and drawn[2] == 0, (path.name, drawn)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["memory.png", "throughput.png"]


def test_report_md_holds_verdict_table_plots_and_machine(settings, tmp_path):
    rows = grid_rows(settings, {1: 100.0}, {1: 150.0}) + [row(settings, "torch", 2, 0, ok=False)]
    (tmp_path / "recommendation-tf.json").write_text('{"framework": "tf", "lines": ["use 3 workers"]}')
    paths = report.render(tmp_path, rows)
    text = paths[-1].read_text()
    assert text.startswith("# feedbench: image, tf vs torch")
    assert "- tf fed the consumer better at an equal CPU budget (1 CPU per run): its best, 150.0 samples/s" in text
    assert "| tf | 1 | 150.0 | 0.50 | 0.50 |" in text and "FAILED: the run's process was killed" in text
    assert "![throughput and starvation against workers](throughput.png)" in text and "(memory.png)" in text
    assert "## Sweep: tf" in text and "use 3 workers" in text
    assert '"workload": "emulated:20ms"' in text and "- cpu_model: " in text and "- torch_version: " in text


def test_describe_a_run_readably(settings):
    lines = report.describe(row(settings, "torch", 2, 123.4))
    assert lines[0] == "image torch workers=2: emulated:20ms on cpu, 1 CPU per run"
    assert "123.4 samples/s" in lines[1] and lines[2] == "  starvation         0.500 (highly input-bound)"
    assert report.describe(row(settings, "tf", 1, 0, ok=False))[1].startswith("  FAILED: the run's process")


def test_a_window_that_crossed_an_epoch_is_cautioned(settings):
    rows = grid_rows(settings, {1: 100.0, 2: 200.0}, {1: 90.0})
    assert not any("epoch" in line for line in report.verdict(rows))
    rows[1] = row(settings, "torch", 2, 200.0, epochs=3)
    caution = [line for line in report.verdict(rows) if "epoch" in line]
    assert caution == [caution[0]] and caution[0].startswith("Caution: 1 of 3 runs read past the end of the dataset "
                                                             "(up to 3 epochs in warm-up and window)")
    assert "crossed an epoch boundary" in caution[0]


def test_workers_0_and_autotune_are_said_to_differ_between_frameworks(settings):
    assert not any(line.startswith("Note:") for line in report.verdict(grid_rows(settings, {1: 10.0}, {1: 9.0})))
    zero = [line for line in report.verdict(grid_rows(settings, {0: 10.0}, {0: 9.0})) if line.startswith("Note:")]
    assert len(zero) == 1 and zero[0].startswith("Note: at workers=0 ")
    # in the registry's words for each backend
    assert ("torch makes each batch in the main process" in zero[0]
            and "tf maps sequentially but still prefetches" in zero[0])
    assert "AUTOTUNE" not in zero[0]
    both = grid_rows(settings, {0: 10.0, "autotune": 20.0}, {0: 9.0, "autotune": 25.0})
    note = [line for line in report.verdict(both) if line.startswith("Note:")]
    assert (len(note) == 1 and "workers=0" in note[0] and "AUTOTUNE is " in note[0]
            and "one worker process per CPU in torch" in note[0])


def test_failed_runs_are_marked_on_the_throughput_panel_only(settings):
    rows = grid_rows(settings, {0: 50.0, 1: 100.0}, {0: 40.0}) + [row(settings, "tf", 1, 0, ok=False)]
    throughput, memory = report.figures(rows)
    rate, starve = throughput.axes
    crosses = lambda ax: [line for line in ax.get_lines() if line.get_marker() == "x"]  # noqa: E731
    assert len(crosses(rate)) == 1 and list(crosses(rate)[0].get_ydata()) == [0]
    assert crosses(starve) == [] and crosses(memory.axes[0]) == []
    assert "x: a failed run" in rate.get_xlabel() and "failed" not in starve.get_xlabel()
    assert "failed" not in memory.axes[0].get_xlabel()


def test_the_au_target_comes_from_the_sweep_that_used_it(settings, tmp_path):
    rows = [row(settings, "torch", w, 100.0 * w, au=au) for w, au in ((1, 0.85), (2, 0.95))]
    (tmp_path / "recommendation-torch.json").write_text('{"framework": "torch", "target_au": 0.8, "lines": []}')
    targets = report.au_targets(report.recommendations(tmp_path))
    assert targets == {"torch": 0.8}
    line = [line for line in report.verdict(rows, targets) if line.startswith("Fewest workers")][0]
    assert line == "Fewest workers that kept the consumer busy (AU >= 0.8): torch at 1 worker."
    text = report.render(tmp_path, rows)[-1].read_text()
    assert "(AU >= 0.8): torch at 1 worker." in text and "AU >= 0.9" not in text
    assert report.SAME_WITHIN is sweep.NEAR_BEST


def test_skipped_is_named_for_what_the_task_skips(settings):
    image = row(settings, "torch", 2, 123.4)
    assert "  samples skipped    0" in report.describe(image)
    assert "  records skipped    0" in report.describe({**image, "task": "text"})


def test_no_verdict_is_drawn_from_runs_that_shared_their_cpus(settings):
    rows = grid_rows(settings, {1: 100.0, 2: 150.0}, {1: 90.0, 2: 140.0})
    rows.append(row(settings, "tf", 4, 500.0, contention=0.48))  # the fastest, but beside another job
    lines = report.verdict(rows)
    assert lines[0].startswith("torch fed the consumer better") and "150.0 samples/s at 2 workers" in lines[0]
    caution = [line for line in lines if "shared their CPUs" in line]
    assert len(caution) == 1 and "1 of 5 runs" in caution[0] and "tf workers=4 0.48" in caution[0]
    assert "--retry-contended" in caution[0] and not any("500.0" in line for line in lines if line not in caution)
    cells = report.table_cells(rows[-1])
    assert cells[report.COLUMNS.index("contention")] == "0.48" and cells[-1] == "shared its CPUs"
    alone = report.verdict([row(settings, "tf", 1, 10.0, contention=0.2),
                            row(settings, "torch", 1, 9.0, contention=0.3)])
    assert alone[0] == "No run had its CPUs to itself, so no winner is drawn."
