"""`feedbench demo` through the installed entry point, on a private cache: the default
datasets, then the comparison of the frameworks on them, then the same again resumed."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from feedbench.pipelines import registry
from feedbench.pipelines.cli import main

FEEDBENCH = shutil.which("feedbench", path=str(Path(sys.executable).parent))


def test_demo_makes_the_datasets_compares_the_frameworks_then_resumes(tmp_path):
    env = {**os.environ, "FEEDBENCH_CACHE": str(tmp_path)}
    args = [FEEDBENCH, "demo", "--images", "16", "--documents", "40", "--workers", "0", "--steps", "3",
            "--workload", "emulated:5ms"]
    first = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    assert "image folder" in first.stdout and "image shards" in first.stdout and "generated" in first.stdout
    assert (tmp_path / "data" / "images-16" / "manifest.json").is_file()
    assert (tmp_path / "data" / "images-16.parquet" / "part-00000.parquet").is_file()
    assert (tmp_path / "data" / "text-40" / "corpus.jsonl").is_file()

    tasks = ["image", "text"] if "text" in registry.tasks() else ["image"]
    reports = [Path(line.split(": ", 1)[1]) for line in first.stdout.splitlines() if line.endswith("/report.md")
               and line.split(" ", 1)[0] in tasks]
    assert [p.parent.name for p in reports] == tasks
    out = reports[0].parent.parent
    assert out.parent == tmp_path / "demo"
    for task in tasks:
        rows = json.loads((out / task / "results.json").read_text())
        assert sorted(r["framework"] for r in rows) == registry.defaults(task)
        assert all(r["ok"] and r["workers"] == 0 and r["steps"] == 3 for r in rows), [r["error"] for r in rows]
        assert all(r["epochs"] == 1 for r in rows), [(r["framework"], r["epochs"]) for r in rows]  # one epoch holds all
        assert (out / task / "throughput.png").is_file() and "## Verdict" in (out / task / "report.md").read_text()
        # why it starves: feedbench explain of every framework, linked from the report
        explained = json.loads((out / task / "explain" / "stages.json").read_text())
        assert explained["complete"] and sorted(f["framework"] for f in explained["frameworks"]) == \
            registry.defaults(task)
        assert "[explain/explain.md](explain/explain.md)" in (out / task / "report.md").read_text()
        assert (out / task / "explain" / "stages.png").is_file()
    image_rows = json.loads((out / "image" / "results.json").read_text())
    # 16 images, 4 warm-up + 3 measured steps at workers=0: batches of 2, so that one epoch holds all 7
    assert image_rows[0]["settings"]["options"]["batch_size"] == 2
    assert any(verdict in first.stdout for verdict in  # the last: every run shared its CPUs (a busy machine)
               ("fed the consumer better", "No clear winner", "Only ", "No run had its CPUs to itself"))

    second = subprocess.run([*args, "--out", str(out), "--resume"], capture_output=True, text=True, env=env,
                            timeout=600)
    assert second.returncode == 0, second.stderr
    assert "generated" not in second.stdout and second.stdout.count("reused") == 3
    assert second.stdout.count(f"{len(registry.defaults('image'))} of 2 cells were already in") >= 1
    assert json.loads((out / "image" / "results.json").read_text()) == image_rows  # nothing measured again
    assert second.stdout.count("why it starves (kept from") == len(tasks)  # nor explained again


@pytest.mark.parametrize(("args", "message"), [
    (["--images", "0"], "--images must be at least 1, got 0"),
    (["--documents", "0"], "--documents must be at least 1, got 0"),
    (["--images", "6", "--workers", "0", "--steps", "3"], "--images 6: too few for one epoch to hold the warm-up and "
                                                           "the measured steps (7 batches of at least 1)"),
    (["--resume"], "--resume needs --out DIR"),
])
def test_bad_demo_values_are_one_line_before_anything_is_made(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.setenv("FEEDBENCH_CACHE", str(tmp_path))
    assert main(["demo", *args]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # no dataset made, no folder created
