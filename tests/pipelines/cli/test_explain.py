"""`feedbench explain` on the real image pipelines: its files, its workload ceiling against
its analytic value; its bad values.

The stages of a synthetic pipeline of known costs are held to the truth in
tests/pipelines/truth/test_explain_truth.py; here the real pipelines of both frameworks go
through the command as a user runs it. The sum of the real stages against `feedbench run`'s
one-worker cost (within 15%) needs medians of several runs of one CPU (a run varies by about
20% here): benchmarks/test_bench_explain.py.
"""

import json
import math

import pyarrow.parquet as pq
import pytest

from feedbench.datasets import make_image_folder
from feedbench.pipelines.cli import main
from feedbench.pipelines.harness.attribution import FrameworkExplanation
from feedbench.pipelines.loop.metrics import contended

BATCH, STEPS, WARMUP, STEP_S = 8, 20, 4, 0.002
STAGES = {"tf": ["read", "decode", "transform", "batch", "deliver", "copy", "step"],
          "torch": ["read", "decode", "transform", "batch", "deliver", "copy", "step"]}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """400 photo-like JPEGs of 256 x 192: one epoch holds the warm-up and the window of every run
    (44 batches of 8), a window of about half a second on one CPU."""
    return make_image_folder(tmp_path_factory.mktemp("explain") / "photos", 400, classes=4, seed=5, size=(256, 192),
                             workers=1)


def _explain(data, out):
    return main(["explain", "--task", "image", "--data", str(data), "--batch-size", str(BATCH), "--option",
                 "image_size=64", "--steps", str(STEPS), "--warmup", str(WARMUP), "--cpus", "2", "--device", "cpu",
                 "--workload", f"emulated:{STEP_S * 1e3:g}ms", "--retry-contended", "--out", str(out)])


def test_explain_writes_its_files_and_its_ceiling_is_the_workloads(photos, tmp_path, capsys):
    out = tmp_path / "why"
    assert _explain(photos.root, out) == 0
    printed = capsys.readouterr().out
    data = json.loads((out / "stages.json").read_text())
    assert data["complete"] and [f["framework"] for f in data["frameworks"]] == ["tf", "torch"]
    found = {f["framework"]: FrameworkExplanation.from_dict(f) for f in data["frameworks"]}
    table = pq.read_table(out / "stages.parquet").to_pylist()
    for framework, stages in STAGES.items():
        assert [r["stage"] for r in table if r["framework"] == framework] == stages
    for name in ("stages.png", "ceilings.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "explain.md").read_text()
    assert "## tf.data (tf)" in md and "## torch DataLoader (torch)" in md and "![stages](stages.png)" in md
    assert "of torch's per-sample cost" in printed and "of tf's per-sample cost" in printed
    assert "AUTOTUNE" in md  # tf.data's choices, read from the profiler

    for framework, one in found.items():
        # the workload alone on a resident batch: the emulated device's analytic rate, B / t
        workload = one.ceiling("workload")
        if not contended(_run_of(data, framework, "workload")["contention"]):
            assert workload.samples_per_s == pytest.approx(BATCH / STEP_S, rel=0.05)
        assert math.isclose(sum(s.seconds_per_sample for s in one.stages if s.side == "pipeline"), one.one_worker_s)
        assert one.needed is not None and one.needed.workers >= 1

    # report DIR draws the plots and explain.md again from stages.json
    (out / "explain.md").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "explain.md").read_text() == md


def _run_of(data, framework, role):
    return _runs_of(data, framework, role)[-1]


def _runs_of(data, framework, role):
    return [r for r in data["runs"] if r["framework"] == framework and r["role"] == role]


@pytest.mark.parametrize(("extra", "message"), [
    (["--repeats", "0"], "repeats must be"),
    (["--target-au", "1.5"], "target_au must be"),
    (["--workers", "0"], "workers must be"),
    (["--frameworks", "jax"], "unknown framework 'jax'"),
    (["--sweep", "/nonexistent/sweep"], "--sweep /nonexistent/sweep: no such folder"),
])
def test_bad_values_are_one_line_before_anything_runs(small_folder, tmp_path, capsys, extra, message):
    out = tmp_path / "why"
    assert main(["explain", "--task", "image", "--data", str(small_folder.root), "--out", str(out), *extra]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_an_out_that_is_a_file_is_refused_and_left_alone(small_folder, tmp_path, capsys):
    out = tmp_path / "taken"
    out.write_text("mine")
    assert main(["explain", "--task", "image", "--data", str(small_folder.root), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "is a file" in err and len(err.strip().splitlines()) == 1
    assert out.read_text() == "mine"
