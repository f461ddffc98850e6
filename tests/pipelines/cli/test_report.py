"""`feedbench report DIR`: the table, plots and report.md drawn again from saved results."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from feedbench.pipelines import RunResult
from feedbench.pipelines.cli import main
from feedbench.pipelines.harness.grid import make_row
from feedbench.pipelines.harness.plan import Cell, Settings
from feedbench.pipelines.harness.store import ResultStore
from feedbench.pipelines.loop.config import MeasureConfig

FEEDBENCH = shutil.which("feedbench", path=str(Path(sys.executable).parent))


def saved_results(small_folder, out):
    """Saves four runs into `out` (and lets go of the folder); returns their settings."""
    settings = Settings(task="image", data=small_folder.root,
                        measure=MeasureConfig(workload="emulated:20ms", device="cpu", cpus=1, steps=40))
    with ResultStore.open(out, settings, resume=False) as store:
        for framework, workers, rate in (("torch", 1, 100.0), ("torch", 2, 190.0), ("tf", 1, 120.0), ("tf", 2, 150.0)):
            result = RunResult(samples_per_s=rate, batches_per_s=rate / 32, starvation=0.4, accelerator_utilization=0.6,
                               steps=40, window_s=8.0, peak_pss_bytes=10**9, peak_rss_bytes=2 * 10**9, device="cpu")
            store.add(make_row(settings, Cell(framework, workers), result, command="compare", started_at="t",
                               wall_s=9.0))
    return settings


def test_report_redraws_everything_from_saved_results(small_folder, tmp_path):
    saved_results(small_folder, tmp_path)
    assert not (tmp_path / "report.md").exists()
    done = subprocess.run([FEEDBENCH, "report", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "image: emulated:20ms on cpu, 1 CPU per run" in done.stdout and "190.0" in done.stdout
    assert ("torch fed the consumer better at an equal CPU budget (1 CPU per run): its best, 190.0 samples/s at "
            "2 workers, is 27% above tf's best, 150.0 samples/s at 2 workers (1.27x).") in done.stdout
    for name in ("throughput.png", "memory.png", "report.md"):
        assert (tmp_path / name).stat().st_size > 1000
        assert str(tmp_path / name) in done.stdout
    assert "is 27% above tf's best" in (tmp_path / "report.md").read_text()


def test_report_waits_for_a_grid_still_measuring_into_the_folder(small_folder, tmp_path, held_elsewhere):
    settings = saved_results(small_folder, tmp_path)
    with held_elsewhere(tmp_path, settings):
        done = subprocess.run([FEEDBENCH, "report", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr == (f"feedbench: error: {tmp_path}: another feedbench process is measuring into it; run "
                           "report again when it ends (it redraws the report itself then)\n")
    assert not (tmp_path / "report.md").exists()  # nothing drawn over the grid's own report
    assert subprocess.run([FEEDBENCH, "report", str(tmp_path)], capture_output=True, timeout=120).returncode == 0


def test_report_of_a_folder_without_results_is_one_line(tmp_path):
    done = subprocess.run([FEEDBENCH, "report", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr == (f"feedbench: error: {tmp_path}: not a feedbench results folder (no results.json; made by "
                           "feedbench compare, sweep or demo)\n")


@pytest.mark.parametrize(("text", "message"), [
    ("[{]", "results.json: not readable as feedbench results"),
    ("3", "results.json: not feedbench results (expected a list of rows, got int)"),
    ('[{"framework": "tf"}]', "results.json: row 0 is not a feedbench result (it lacks task, workers, ok"),
])
def test_malformed_results_are_one_line_naming_the_file_and_row(tmp_path, capsys, text, message):
    (tmp_path / "results.json").write_text(text)
    assert main(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert message in err and str(tmp_path) in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]  # nothing drawn
