"""`feedbench sweep` through the CLI: the search's recommendation, its runs saved like a
grid's (and read back on --resume), AUTOTUNE for tf, and bad values."""

import json

import pytest

from feedbench.pipelines.cli import main

TINY = ["--batch-size", "4", "--steps", "8", "--workload", "emulated:5ms", "--option", "image_size=32",
        "--device", "cpu"]


def sweep(capsys, *args):
    status = main(["sweep", "--task", "image", *TINY, *args])
    return status, capsys.readouterr()


def test_sweep_recommends_saves_its_runs_and_resumes_them(small_folder, tmp_path, capsys):
    out = tmp_path / "out"
    base = ["--framework", "torch", "--data", str(small_folder.root), "--max-workers", "2", "--out", str(out)]
    status, printed = sweep(capsys, *base)
    assert status == 0, printed.err
    rows = json.loads((out / "results.json").read_text())
    saved = json.loads((out / "recommendation-torch.json").read_text())
    runs = saved["recommendation"]["runs"]
    assert 1 <= runs <= 2 and len(rows) == runs and saved["measured_now"] == runs
    assert {r["workers"] for r in rows} <= {1, 2} and all(r["command"] == "sweep" for r in rows)
    chosen = saved["recommendation"]["workers"]
    assert chosen in {r["workers"] for r in rows}
    assert f"recommendation: {chosen} worker" in printed.out and saved["lines"][0] in printed.out
    assert f"the search took {runs} runs; this command measured {runs} and read 0 back" in printed.out
    assert printed.err.count("sweep torch: torch workers=") == runs  # progress per run
    assert "## Sweep: torch" in (out / "report.md").read_text() and (out / "throughput.png").is_file()

    status, printed = sweep(capsys, *base, "--resume")
    assert status == 0, printed.err
    assert f"this command measured 0 and read {runs} back" in printed.out
    assert json.loads((out / "results.json").read_text()) == rows  # nothing measured again

    status, printed = sweep(capsys, *base, "--resume", "--exhaustive")
    assert status == 0, printed.err
    rows = json.loads((out / "results.json").read_text())
    assert sorted(r["workers"] for r in rows) == [1, 2]  # every count, each once
    assert "exhaustive: " in printed.out


def test_a_tf_sweep_has_autotune_as_a_contender(small_folder, tmp_path, capsys):
    status, printed = sweep(capsys, "--framework", "tf", "--data", str(small_folder.root), "--max-workers", "1",
                            "--out", str(tmp_path / "out"))
    assert status == 0, printed.err
    rows = json.loads((tmp_path / "out" / "results.json").read_text())
    assert sorted(map(str, (r["workers"] for r in rows))) == ["1", "autotune"]
    assert "autotune: " in printed.out


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--target-au", "1.5"], "--target-au must be in (0, 1], got 1.5"),
     (["--max-workers", "0"], "--max-workers 0"),
     (["--framework", "mxnet"], "unknown framework 'mxnet'")],
)
def test_bad_sweep_values_are_one_line(small_folder, tmp_path, capsys, args, message):
    flags = {"--framework": "torch", "--data": str(small_folder.root), "--out": str(tmp_path / "out")}
    flags.update(dict(zip(args[::2], args[1::2])))
    status, printed = sweep(capsys, *(item for pair in flags.items() for item in pair))
    assert status == 1 and message in printed.err and len(printed.err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_the_default_max_workers_is_the_cpu_budget(small_folder, tmp_path, capsys, monkeypatch):
    from feedbench.pipelines.cli import sweep as _cli_sweep
    from feedbench.pipelines.core.errors import FeedbenchError

    asked = {}

    def recommend(measure, **kwargs):
        asked.update(kwargs)
        raise FeedbenchError("stopped by the test")

    monkeypatch.setattr(_cli_sweep, "_recommend", lambda: recommend)
    status, printed = sweep(capsys, "--framework", "torch", "--data", str(small_folder.root), "--cpus", "1",
                            "--out", str(tmp_path / "out"))
    assert status == 1 and "stopped by the test" in printed.err
    assert asked["max_workers"] == 1  # --cpus 1, not every core this process may use


def test_sweep_never_writes_into_a_folder_of_other_files(small_folder, tmp_path, capsys):
    (tmp_path / "report.md").write_text("mine")
    status, printed = sweep(capsys, "--framework", "torch", "--data", str(small_folder.root), "--out", str(tmp_path))
    assert status == 1 and printed.err == (f"feedbench: error: --out {tmp_path}: not a feedbench results folder (it "
                                           "holds files but no results.json); choose a new or empty folder\n")
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"] and (tmp_path / "report.md").read_text() == "mine"
