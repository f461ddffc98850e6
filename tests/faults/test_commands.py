"""Fault cases: the command line given bad values, and stopped by a signal.

A bad value is one line naming the flag, exit status 2 (usage) or 1, and no traceback; a
grid stopped by SIGTERM keeps its finished cells and ends every process it started.
"""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from feedbench.pipelines.cli import main

FEEDBENCH = shutil.which("feedbench", path=str(Path(sys.executable).parent))
TINY = ["--batch-size", "4", "--steps", "5", "--workload", "emulated:5ms", "--option", "image_size=32",
        "--device", "cpu"]


def _bad_values(data):
    """(arguments, the words the error line holds)."""
    run = ["run", "--task", "image", "--framework", "torch", "--data", data, "--device", "cpu"]
    return [
        (["run", "--task", "video", "--framework", "torch", "--data", data], "task 'video'"),
        (["run", "--task", "image", "--framework", "jax", "--data", data], "framework 'jax'"),
        ([*run, "--workers", "-1"], "--workers"),
        ([*run, "--workers", "lots"], "--workers"),
        ([*run, "--batch-size", "0"], "batch"),
        ([*run[:-2], "--device", "tpu"], "device"),
        ([*run, "--workload", "nonsense"], "workload"),
        ([*run, "--steps", "0"], "steps"),
        ([*run, "--option", "image_size=-3"], "image_size"),
        ([*run, "--option", "nonsense"], "--option"),
        ([*run, "--cpus", "9999"], "cpus must be"),
        (["run", "--task", "image", "--framework", "tf", "--data", data + "-missing", "--device", "cpu"], "-missing"),
        (["compare", "--task", "image", "--data", data, "--frameworks", "torch,nope", "--out", data + "-out"], "nope"),
        (["sweep", "--task", "image", "--framework", "tf", "--data", data, "--target-au", "2", "--out", data + "-out"],
         "target"),
        (["report", data + "-no-results"], "-no-results"),
        (["compare", "--task", "image", "--data", data, "--retry-failed", "--out", data + "-out"], "--retry-failed"),
    ]


@pytest.mark.parametrize("case", range(16))
def test_a_bad_value_is_one_line_naming_it(fault, small_folder, capsys, case):
    arguments, words = _bad_values(str(small_folder.root))[case]
    before = fault.digest(small_folder.root)
    with fault.within(120):
        try:
            status = main(arguments)
        except SystemExit as exc:  # argparse's usage errors
            status = exc.code
    err = capsys.readouterr().err
    assert status in (1, 2), f"{arguments}: exit status {status}"
    assert words in fault.one_line(err), f"{arguments}: {err!r}"
    fault.unchanged(before, fault.digest(small_folder.root), "the dataset")


def test_sigterm_during_compare_keeps_the_finished_cells_and_ends_every_process(fault, small_folder, tmp_path):
    out = tmp_path / "out"
    args = [FEEDBENCH, "compare", "--task", "image", "--data", str(small_folder.root), "--frameworks", "torch",
            "--workers", "0,1,2", "--out", str(out), *TINY]
    with fault.within(300), open(tmp_path / "stderr", "w") as err:
        grid = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
        while not (out / "results.json").is_file() and grid.poll() is None:
            time.sleep(0.05)
        running = [p.pid for p in psutil.Process(grid.pid).children(recursive=True)] if grid.poll() is None else []
        grid.send_signal(signal.SIGTERM)
        status = grid.wait()
    stderr = (tmp_path / "stderr").read_text()
    assert "Traceback" not in stderr, stderr
    if status == 0:
        pytest.skip("the grid ended before the signal came")
    assert status == 143, stderr
    assert "feedbench: terminated" in stderr and "--resume" in stderr
    rows = json.loads((out / "results.json").read_text())
    fault.kept(len(rows) >= 1 and all(row["ok"] for row in rows), f"finished cells: {rows}")
    _, alive = psutil.wait_procs([psutil.Process(pid) for pid in running if psutil.pid_exists(pid)], timeout=10)
    left = [p.pid for p in alive if p.status() != "zombie"]
    assert not left, f"processes left behind: {left}"
