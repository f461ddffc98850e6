"""`feedbench capacity` on the real image pipelines of both frameworks: each rank over its own
shard, the files, a resume that measures nothing again; bad values in one line before anything
runs. (The search against producers of known cost: tests/pipelines/truth/test_capacity_truth.py.)"""

import json

import pytest

from feedbench.pipelines.cli import main

ARGS = ["--task", "image", "--accelerator", "step=20ms,batch=4", "--option", "image_size=32", "--cpus", "2",
        "--seconds", "1", "--warmup", "4", "--max-ranks", "2", "--frameworks", "torch,tf"]


def test_capacity_runs_ranks_over_their_shards_writes_its_files_and_resumes(small_folder, tmp_path, capsys):
    out = tmp_path / "cap"
    assert main(["capacity", "--data", str(small_folder.root), *ARGS, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    data = json.loads((out / "capacity.json").read_text())
    assert data["complete"] and set(data["points"]) == {"torch", "tf"}
    for framework, points in data["points"].items():
        assert [p["ranks"] for p in points][0] == 1
        for point in points:
            ranks = [r["config"] for r in point["results"]]
            assert all(r["ok"] for r in point["results"]), [r["error"] for r in point["results"]]
            # each rank its own process over its own shard, all on the same 2 CPUs
            assert [(c["num_shards"], c["shard_index"]) for c in ranks] == [(point["ranks"], k)
                                                                           for k in range(point["ranks"])]
            assert all(c["cpu_ids"] == ranks[0]["cpu_ids"] and len(c["cpu_ids"]) == 2 for c in ranks)
            assert point["peak_rss_bytes"] > 0 and point["window_s"] > 0.5
        score = data["capacity"][framework]["score"]
        assert score == max(p["ranks"] for p in points if p["holds"]) if points[0]["holds"] else score < 1
        assert f"{framework} feeds" in printed
    assert (out / "capacity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "capacity.md").read_text()
    assert "## torch" in md and "## tf" in md and "step=20ms" not in md and "batch 4 in 20 ms" in md

    # resumed: every N is in capacity.json already; nothing is measured again
    assert main(["capacity", "--data", str(small_folder.root), *ARGS, "--out", str(out), "--resume"]) == 0
    again = json.loads((out / "capacity.json").read_text())
    assert again["points"] == data["points"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--accelerator", "b200"], "unknown accelerator 'b200'"),
    (["--accelerator", "step=1ms"], "give both step=<time> and batch=<samples>"),
    (["--batch-size", "8"], "--batch-size: the accelerator sets it"),
    (["--workload", "emulated:5ms"], "--workload: the accelerator sets it"),
    (["--steps", "5"], "--steps: the ranks' windows are of --seconds"),
    (["--target-au", "2"], "target_au must be"),
    (["--max-ranks", "0"], "max_ranks must be"),
    (["--frameworks", "jax"], "unknown framework 'jax'"),
    (["--option", "num_shards=2"], "num_shards"),
])
def test_bad_values_are_one_line_before_anything_runs(small_folder, tmp_path, capsys, extra, message):
    out = tmp_path / "cap"
    assert main(["capacity", "--task", "image", "--data", str(small_folder.root), "--out", str(out), *extra]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_folder_holding_a_capacity_run_needs_resume(small_folder, tmp_path, capsys):
    out = tmp_path / "cap"
    out.mkdir()
    (out / "capacity.json").write_text('{"settings": {}, "plan": {}, "points": {}}')
    assert main(["capacity", "--task", "image", "--data", str(small_folder.root), "--out", str(out)]) == 1
    assert "add --resume" in capsys.readouterr().err
    assert (out / "capacity.json").read_text() == '{"settings": {}, "plan": {}, "points": {}}'


def test_compare_with_capacity_shows_the_scores_side_by_side(small_folder, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--task", "image", "--data", str(small_folder.root), "--frameworks", "torch",
                 "--workers", "1", "--batch-size", "4", "--option", "image_size=32", "--cpus", "2", "--seconds", "1",
                 "--warmup", "4",
                 "--workload", "emulated:5ms", "--capacity", "step=1ms,batch=8", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    data = json.loads((out / "capacity" / "capacity.json").read_text())
    assert data["complete"] and set(data["capacity"]) == {"torch"}
    assert data["plan"]["accelerator"]["batch_size"] == 8 and data["settings"]["options"]["batch_size"] == 8
    report = (out / "report.md").read_text()
    assert "## How many accelerators these CPUs feed" in report
    assert "[capacity/capacity.md](capacity/capacity.md)" in report
    for framework, found in data["capacity"].items():
        assert f"| {framework} | " in report.split("## How many accelerators")[1]
        assert f"{framework} feeds" in printed and found["score"] is not None
