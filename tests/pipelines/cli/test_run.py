"""`feedbench run`, and the errors every measuring command gives, through the CLI entry point."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from feedbench.pipelines import RunResult
from feedbench.pipelines.cli import main

FEEDBENCH = shutil.which("feedbench", path=str(Path(sys.executable).parent))
TINY = ["--batch-size", "4", "--steps", "5", "--workload", "emulated:5ms", "--option", "image_size=32"]


def test_run_measures_once_and_prints_the_result(small_folder, tmp_path):
    out = subprocess.run([FEEDBENCH, "run", "--task", "image", "--framework", "torch", "--data", str(small_folder.root),
                          "--workers", "1", "--device", "cpu", "--cpus", "1", *TINY,
                          "--json", str(tmp_path / "r.json")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "image torch workers=1: emulated:5ms on cpu, 1 CPU per run"
    assert "samples/s" in lines[1] and "starvation" in lines[2] and "5 steps after 8 warm-up, 20 samples" in out.stdout
    assert "[1/1] run: torch workers=1" in out.stderr  # progress, on stderr
    saved = json.loads((tmp_path / "r.json").read_text())
    result = RunResult.from_dict(saved)
    assert (result.ok and result.steps == 5 and result.samples == 20
            and result.config["cpu_ids"] == [result.config["cpu_ids"][0]])
    assert saved["workers"] == 1 and saved["settings"]["cpus"] == 1 and saved["cpu_model"]
    assert f"{result.samples_per_s:.1f} samples/s" in lines[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "video"], "unknown task 'video'; choose "),
        (["--framework", "jax"], "unknown framework 'jax' for task 'image'; choose dali, ray, tf, tf-service, torch, "
                                 "torch-gpu"),
        (["--data", "/no/such/dataset"], "/no/such/dataset: no such dataset"),
        (["--workload", "resnet5"], "unknown workload 'resnet5'"),
        (["--workers", "some"], "--workers takes integers >= 0 or autotune, got 'some'"),
        (["--tokenizer", "spacy"], "--tokenizer spacy: unknown option(s) for the image pipeline: tokenizer"),
        (["--option", "output=jpeg"], "--option output jpeg: output must be one of float, uint8"),
        (["--option", "workers=3"], "workers is set per cell (--workers)"),
        (["--option", "train=no"], "--option train no: train must be True or False, got 'no'"),
        (["--warmup", "long"], "argument --warmup: must be a number of steps or auto, got 'long'"),
        (["--cpus", "999"], "cpus must be 1.."),
        (["--steps", "many"], "argument --steps: invalid int value: 'many'"),
        (["--device", "tpu"], "device 'tpu': choose auto, cpu, cuda or cuda:N"),
    ],
)
def test_bad_values_are_one_line_on_stderr(small_folder, capsys, args, message):
    flags, extra = {"--task": "image", "--framework": "torch", "--data": str(small_folder.root)}, []
    for flag, value in zip(args[::2], args[1::2]):
        if flag in flags:
            flags[flag] = value
        else:
            extra += [flag, value]
    argv = ["run", *(item for pair in flags.items() for item in pair), *TINY, *extra]
    try:
        status = main(argv)
    except SystemExit as exc:  # a usage error, from argparse
        status = exc.code
    err = capsys.readouterr().err
    assert status != 0
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cuda_where_there_is_none_is_one_line(small_folder, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    status = main(["run", "--task", "image", "--framework", "torch", "--data", str(small_folder.root),
                   "--device", "cuda"])
    err = capsys.readouterr().err
    assert status == 1 and err == ("feedbench: error: device 'cuda' asked for, "
                                   "but torch sees no CUDA device on this machine\n")


def test_a_contender_runs_as_the_defaults_do(small_folder, capsys):
    status = main(["run", "--task", "image", "--framework", "torch-threads", "--data", str(small_folder.root),
                   "--workers", "2", "--device", "cpu", *TINY])
    out = capsys.readouterr()
    assert status == 0, out.err
    assert out.out.startswith("image torch-threads workers=2: emulated:5ms on cpu") and "samples/s" in out.out


def test_torch_gpu_where_torch_sees_no_gpu_is_one_line(small_folder, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    status = main(["run", "--task", "image", "--framework", "torch-gpu", "--data", str(small_folder.root), *TINY])
    err = capsys.readouterr().err
    assert status == 1 and err.startswith("feedbench: error: torch-gpu decodes and transforms on a CUDA GPU")
    assert len(err.strip().splitlines()) == 1 and "torch sees none on this machine" in err


def test_a_failed_run_is_one_line_through_the_entry_point(tmp_path):
    broken = tmp_path / "broken" / "cats"
    broken.mkdir(parents=True)
    for i in range(4):
        (broken / f"{i}.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    out = subprocess.run([FEEDBENCH, "run", "--task", "image", "--framework", "torch", "--data", str(broken.parent),
                          "--workers", "0", "--device", "cpu", *TINY], capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    error_lines = [line for line in out.stderr.splitlines() if line.startswith("feedbench: error:")]
    assert len(error_lines) == 1 and "the run failed:" in error_lines[0] and "Traceback" not in out.stderr


def test_run_a_text_pipeline_with_a_tokenizer(text_corpus, capsys):
    status = main(["run", "--task", "text", "--framework", "torch", "--data", str(text_corpus.root), "--workers", "0",
                   "--tokenizer", "regex", "--batch-size", "8", "--steps", "5", "--workload", "emulated:5ms",
                   "--device", "cpu"])
    out = capsys.readouterr()
    assert status == 0, out.err
    assert out.out.startswith("text torch workers=0: emulated:5ms on cpu") and "samples/s" in out.out


def test_the_default_worker_count_follows_the_cpu_budget(small_folder, capsys, monkeypatch):
    from feedbench.pipelines.cli import run as _cli_run
    from feedbench.pipelines.core.errors import FeedbenchError
    from feedbench.pipelines.loop import config

    monkeypatch.setattr(config, "usable_cpus", lambda: list(range(8)))  # as if 8 CPUs were usable
    cells = []

    def run_cell(settings, cell, *, command):
        cells.append((settings.cpus, cell.workers))
        raise FeedbenchError("stopped by the test")

    monkeypatch.setattr(_cli_run, "run_cell", run_cell)
    for cpus, _workers in (("4", 3), ("1", 1)):
        assert main(["run", "--task", "image", "--framework", "torch", "--data", str(small_folder.root), *TINY,
                     "--cpus", cpus]) == 1
    assert "stopped by the test" in capsys.readouterr().err
    assert cells == [(4, 3), (1, 1)]  # --cpus 4: 3 workers (without --cpus: 7)


@pytest.mark.parametrize(("text", "value"), [("shuffle=False", False), ("shuffle=TRUE", True), ("drop_last=none", None),
                                             ("image_size=160", 160), ("output=uint8", "uint8"), ("seed=0", 0)])
def test_option_values_read_as_a_shell_user_writes_them(text, value):
    from feedbench.pipelines.cli.options import _key_value

    assert _key_value(text) == (text.split("=")[0], value)  # "False" was the truthy word "False"
