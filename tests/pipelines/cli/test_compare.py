"""`feedbench compare` through the installed entry point: the grid, its files, its verdict,
an interrupted grid resumed, refusals, and failed cells."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from feedbench.pipelines import RunResult, registry
from feedbench.pipelines.loop.metrics import contended

FEEDBENCH = shutil.which("feedbench", path=str(Path(sys.executable).parent))
TINY = ["--batch-size", "4", "--steps", "5", "--workload", "emulated:5ms", "--option", "image_size=32",
        "--device", "cpu"]


def compare(*args, timeout=600):
    return subprocess.run([FEEDBENCH, "compare", *args], capture_output=True, text=True, timeout=timeout)


def rows_in(out):
    return json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def grid(small_folder, tmp_path_factory):
    """torch and tf at 0 and 1 workers: four isolated runs."""
    out = tmp_path_factory.mktemp("compare") / "out"
    done = compare("--task", "image", "--data", str(small_folder.root), "--workers", "0,1", "--out", str(out), *TINY)
    return out, done


def test_compare_writes_a_row_per_cell_with_everything(grid):
    out, done = grid
    assert done.returncode == 0, done.stderr
    rows = rows_in(out)
    assert sorted((r["framework"], r["workers"]) for r in rows) == [("tf", 0), ("tf", 1), ("torch", 0), ("torch", 1)]
    for row in rows:
        assert row["ok"], row["error"]
        assert set(RunResult.__dataclass_fields__) <= set(row)
        assert (row["settings"]["cpus"] == len(os.sched_getaffinity(0))
                and row["config"]["cpus"] == row["settings"]["cpus"])
        assert row["cpu_model"] and row["cpu_cores"] >= 1 and row["torch_version"] and row["tensorflow_version"]
    table = pq.read_table(out / "results.parquet")
    assert table.num_rows == 4 and sorted(table.column("framework").to_pylist()) == ["tf", "tf", "torch", "torch"]
    assert {"samples_per_s", "starvation", "peak_pss_bytes", "settings", "cpu_model",
            "torch_version"} <= set(table.schema.names)
    assert sorted(p.name for p in out.iterdir()) == ["memory.png", "report.md", "results.json", "results.parquet",
                                                     "throughput.png"]


def test_compare_prints_a_table_and_a_verdict_from_the_numbers(grid):
    out, done = grid
    rows = rows_in(out)
    assert "image: emulated:5ms on cpu" in done.stdout and "│ torch     │       1 │" in done.stdout
    assert f"report:  {out / 'report.md'}" in done.stdout
    assert "[4/4] compare:" in done.stderr  # progress: which cell of how many
    report = (out / "report.md").read_text()
    assert "## Verdict" in report and "(throughput.png)" in report
    # On a busy machine, runs that shared their CPUs are named and left out of the verdict.
    shared = [r for r in rows if contended(r["contention"])]
    if shared:
        assert f"Caution: {len(shared)} of 4 runs shared their CPUs with other processes" in done.stdout
    quiet = [r for r in rows if r not in shared]
    best = {fw: max(r["samples_per_s"] for r in quiet if r["framework"] == fw)
            for fw in ("torch", "tf") if any(r["framework"] == fw for r in quiet)}
    if len(best) < 2:
        return  # one framework or none had its CPUs to itself: no comparison to check
    leader, other = sorted(best, key=best.get, reverse=True)
    gain = best[leader] / best[other] - 1
    if gain >= 0.05:
        assert f"{leader} fed the consumer better at an equal CPU budget" in done.stdout
        assert f"is {gain:.0%} above {other}'s best, {best[other]:.1f} samples/s" in done.stdout
    else:
        assert "No clear winner" in done.stdout
    assert f"{best[leader]:.1f}" in report


def test_existing_results_are_refused_without_resume_and_other_settings_with_it(grid, small_folder):
    out, _ = grid
    again = compare("--task", "image", "--data", str(small_folder.root), "--workers", "0,1", "--out", str(out), *TINY)
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert again.stderr.strip().splitlines()[-1].startswith(f"feedbench: error: --out {out} already holds 4 results; "
                                                            "pass --resume")
    other = compare("--task", "image", "--data", str(small_folder.root), "--workers", "0,1", "--out", str(out), *TINY,
                    "--steps", "6", "--resume")
    assert other.returncode == 1
    assert "holds results of other settings (steps: 5 there, 6 now)" in other.stderr
    nothing_left = compare("--task", "image", "--data", str(small_folder.root), "--workers", "0,1", "--out", str(out),
                           *TINY, "--resume")
    assert nothing_left.returncode == 0 and "4 of 4 cells were already in" in nothing_left.stdout
    assert len(rows_in(out)) == 4


def _interruptible():
    """In the child, before it runs compare: SIGINT as a terminal gives it, whatever this process
    inherited. A test suite started in the background by a non-interactive shell ignores SIGINT
    (POSIX: an asynchronous list ignores SIGINT and SIGQUIT), a child inherits the ignoring across
    exec, and Python leaves an ignored SIGINT ignored: compare then rightly ran on to the end and
    exited 0 (what a background job should do), and this test failed whenever the suite ran in the
    background."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def test_an_interrupted_grid_resumes_where_it_stopped(fault, small_folder, tmp_path):
    out = tmp_path / "out"
    args = [FEEDBENCH, "compare", "--task", "image", "--data", str(small_folder.root), "--frameworks", "torch",
            "--workers", "0,1,2", "--out", str(out), *TINY]
    with open(tmp_path / "stderr", "w") as err:
        first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err, preexec_fn=_interruptible)
        deadline, first_cell = time.monotonic() + 240, set()
        while not (out / "results.json").is_file() and time.monotonic() < deadline and first.poll() is None:
            first_cell |= {p.pid for p in psutil.Process(first.pid).children()}
            time.sleep(0.05)
        assert (out / "results.json").is_file(), "no cell finished"
        second_cell = []  # the second cell's process: a child the first cell did not have
        while not second_cell and time.monotonic() < deadline and first.poll() is None:
            second_cell = [p for p in psutil.Process(first.pid).children() if p.pid not in first_cell]
            time.sleep(0.05)
        assert second_cell and len(rows_in(out)) == 1, "the second cell did not start"
        # The interrupt comes while compare waits for the cell (a cell starts torch: seconds), not in
        # the instant it spawns it, where a KeyboardInterrupt can land in a finalizer and be lost.
        time.sleep(0.5)
        assert second_cell[0].is_running() and len(rows_in(out)) == 1, "the second cell ended too soon"
        running = [p.pid for p in psutil.Process(first.pid).children(recursive=True)]
        first.send_signal(signal.SIGINT)  # during the second cell, never between cells
        assert first.wait(timeout=120) == 130
    stderr = (tmp_path / "stderr").read_text()
    assert "cells are saved in" in stderr and "--resume" in stderr and "Traceback" not in stderr
    kept = rows_in(out)
    assert len(kept) == 1  # the interrupted second cell left no row
    # Every process the run started ends: the runs and workers at once, multiprocessing's resource
    # tracker when it reads that its parent has gone (a moment after).
    _, alive = psutil.wait_procs([psutil.Process(pid) for pid in running if psutil.pid_exists(pid)], timeout=10)
    assert running and not [p.pid for p in alive if p.status() != "zombie"]

    resumed = subprocess.run([*args, "--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(kept)} of 3 cells were already in {out}; ran {3 - len(kept)}" in resumed.stdout
    assert resumed.stderr.count("compare: torch workers=") == 3 - len(kept)
    rows = rows_in(out)
    assert sorted(r["workers"] for r in rows) == [0, 1, 2]
    for old in kept:  # the cells measured before the interrupt were not measured again
        assert next(r for r in rows if r["workers"] == old["workers"]) == old


def test_failed_cells_are_recorded_and_the_grid_goes_on(tmp_path):
    broken = tmp_path / "broken" / "cats"
    broken.mkdir(parents=True)
    for i in range(4):
        (broken / f"{i}.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    out = tmp_path / "out"
    done = compare("--task", "image", "--data", str(broken.parent), "--frameworks", "torch", "--workers", "0,1",
                   "--out", str(out), *TINY)
    rows = rows_in(out)
    assert [r["workers"] for r in rows] == [0, 1] and not any(r["ok"] for r in rows)
    assert all(r["error"] for r in rows)
    assert done.returncode == 1 and "every run of the grid failed" in done.stderr and "Traceback" not in done.stderr
    assert "FAILED: " in (out / "report.md").read_text()

    args = ["--task", "image", "--data", str(broken.parent), "--frameworks", "torch", "--workers", "0,1",
            "--out", str(out), *TINY]
    again = compare(*args, "--resume")  # failed cells are results too: not run again
    assert again.returncode == 1 and rows_in(out) == rows
    compare(*args, "--resume", "--retry-failed")
    retried = rows_in(out)
    assert len(retried) == 2 and all(r["started_at"] > old["started_at"] for r, old in zip(retried, rows))
    alone = compare(*args, "--retry-failed")
    assert alone.returncode == 1 and alone.stderr.strip() == ("feedbench: error: --retry-failed needs --resume "
                                                              "(it runs the failed cells of saved results again)")


def test_bad_grid_values_are_one_line(small_folder, tmp_path):
    for args, message in [(["--workers", "0,x"], "--workers takes integers >= 0 or autotune, got 'x'"),
                          (["--workers", "1,1"], "--workers names a value twice"),
                          (["--frameworks", "torch,jax"], "unknown framework 'jax' for task 'image'")]:
        done = compare("--task", "image", "--data", str(small_folder.root), "--out", str(tmp_path / "o"), *args)
        assert done.returncode == 1 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "o").exists()


def test_compare_text_pipelines(text_corpus, tmp_path):
    frameworks = ",".join(registry.frameworks("text"))
    done = compare("--task", "text", "--data", str(text_corpus.root), "--frameworks", frameworks, "--workers", "0",
                   "--tokenizer", "regex", "--batch-size", "8", "--steps", "5", "--workload", "emulated:5ms",
                   "--device", "cpu", "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    rows = rows_in(tmp_path / "out")
    assert sorted(r["framework"] for r in rows) == sorted(registry.frameworks("text"))
    assert all(r["ok"] and r["config"]["tokenizer"] == "regex" for r in rows), [r["error"] for r in rows]


def test_an_existing_folder_without_results_is_never_written_into(small_folder, tmp_path):
    (tmp_path / "report.md").write_text("mine")
    done = compare("--task", "image", "--data", str(small_folder.root), "--workers", "0", "--out", str(tmp_path), *TINY)
    assert done.returncode == 1 and done.stderr == (f"feedbench: error: --out {tmp_path}: not a feedbench results "
                                                    "folder (it holds files but no results.json); choose a new or "
                                                    "empty folder\n")
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"] and (tmp_path / "report.md").read_text() == "mine"


def test_the_default_grid_is_up_to_the_cpu_budget(small_folder, tmp_path, monkeypatch, capsys):
    from feedbench.pipelines.cli import compare as _cli_compare
    from feedbench.pipelines.cli import main

    grids = []
    monkeypatch.setattr(_cli_compare, "compare", lambda settings, frameworks, workers, out, **_: grids.append(
        (settings.cpus, workers)) or [])
    assert main(["compare", "--task", "image", "--data", str(small_folder.root), "--out", str(tmp_path / "o"), *TINY,
                 "--cpus", "1"]) == 0
    assert grids == [(1, [0, 1])]  # not up to every core this process may use
    assert _cli_compare.default_worker_counts(8) == [0, 1, 2, 4, 8]
