"""The disaggregated backends through the CLI: one comparison of torch, tf, tf-service and ray
(each run starting its own local service or Ray instance, and ending every process of it), a
sweep that speaks in remote workers, and the refusals that come before any run."""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

FEEDBENCH = shutil.which("feedbench", path=str(Path(sys.executable).parent))
TINY = ["--batch-size", "4", "--steps", "5", "--workload", "emulated:5ms", "--option", "image_size=32",
        "--device", "cpu", "--cpus", "2"]
# What a local service or Ray instance runs: none may outlive the command that started it.
SERVICE_PROCESSES = ("feedbench.pipelines.core.tf_service", "raylet", "gcs_server", "ray::")


def feedbench(*args, timeout=600):
    return subprocess.run([FEEDBENCH, *args], capture_output=True, text=True, timeout=timeout)


def left_behind(since):
    """Service processes started after `since` that still run."""
    found = []
    for process in psutil.process_iter(["cmdline", "create_time", "name"]):
        try:
            line = " ".join(process.info["cmdline"] or []) + " " + (process.info["name"] or "")
            if process.info["create_time"] >= since - 1 and any(name in line for name in SERVICE_PROCESSES):
                found.append(line)
        except psutil.Error:
            continue
    return found


def test_compare_puts_all_four_in_one_table_and_plot(small_folder, tmp_path):
    out = tmp_path / "out"
    started = time.time()
    done = feedbench("compare", "--task", "image", "--data", str(small_folder.root), "--frameworks",
                     "torch,tf,tf-service,ray", "--workers", "1", "--out", str(out), *TINY)
    assert done.returncode == 0, done.stderr
    rows = json.loads((out / "results.json").read_text())
    assert sorted(row["framework"] for row in rows) == ["ray", "tf", "tf-service", "torch"]
    for row in rows:
        assert row["ok"], (row["framework"], row["error"])
        assert row["samples"] == 4 * 5 and row["samples_per_s"] > 0
    threads = {row["framework"]: row["config"]["threads"] for row in rows}
    assert threads["tf-service"]["tf.data service workers"] == 1
    for framework in ("tf-service", "ray"):
        assert framework in done.stdout
    assert (out / "throughput.png").stat().st_size > 0 and "tf-service" in (out / "report.md").read_text()
    time.sleep(1)
    assert left_behind(started) == []


def test_a_sweep_recommends_remote_workers(small_folder, tmp_path):
    done = feedbench("sweep", "--task", "image", "--data", str(small_folder.root), "--framework", "tf-service",
                     "--max-workers", "1", "--out", str(tmp_path / "sweep"), *TINY)
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("remote workers: "))
    assert "tf.data service worker processes of this machine's speed reach AU 0.90" in line


@pytest.mark.parametrize(("args", "message"), [
    (["compare", "--frameworks", "torch,tf", "--service", "grpc://localhost:5050"],
     "--service is for tf-service, which this command does not run (torch, tf)"),
    (["run", "--framework", "torch", "--ray-address", "localhost:6379"],
     "--ray-address is for ray, which this command does not run (torch)"),
    (["sweep", "--framework", "tf-service", "--service", "grpc://localhost:5050"],
     "--service: a sweep varies the number of service workers"),
    (["run", "--framework", "tf-service", "--service", "localhost"],
     "service 'localhost': expected host:port"),
    (["run", "--framework", "tf-service", "--service", "grpc://127.0.0.1:9"],
     "the tf.data service dispatcher at grpc://127.0.0.1:9 cannot be reached"),
    (["explain", "--frameworks", "ray", "--ray-address", "127.0.0.1:9"],
     "the Ray cluster at 127.0.0.1:9 cannot be reached"),
])
def test_refusals_are_one_line_before_anything_runs(small_folder, tmp_path, args, message):
    command, rest = args[0], args[1:]
    started = time.monotonic()
    done = feedbench(command, "--task", "image", "--data", str(small_folder.root), "--out", str(tmp_path / "o"),
                     *rest, timeout=120) if command != "run" else \
        feedbench(command, "--task", "image", "--data", str(small_folder.root), *rest, timeout=120)
    assert done.returncode != 0
    assert message in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert time.monotonic() - started < 60
    assert not (tmp_path / "o").exists()
