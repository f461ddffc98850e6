"""`feedbench data ...` through the installed entry point."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FEEDBENCH = shutil.which("feedbench", path=str(Path(sys.executable).parent))


def run(*args, cwd=None):
    return subprocess.run([FEEDBENCH, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_data_image_writes_a_dataset_and_its_shards(tmp_path):
    out = run("data", "image", str(tmp_path / "img"), "--n", "12", "--classes", "3", "--size", "80x60",
              "--shards", str(tmp_path / "shards"), "--workers", "1")
    assert out.returncode == 0, out.stderr
    assert "wrote 12 images" in out.stdout and "Parquet shards" in out.stdout
    manifest = json.loads((tmp_path / "img" / "manifest.json").read_text())
    assert manifest["params"]["n"] == 12 and manifest["params"]["classes"] == 3
    assert sorted(p.name for p in (tmp_path / "img").iterdir()) == ["class_000", "class_001", "class_002",
                                                                    "manifest.json"]
    assert (tmp_path / "shards" / "part-00000.parquet").is_file()
    again = run("data", "image", str(tmp_path / "img"), "--n", "12", "--classes", "3", "--size", "80x60")
    assert again.returncode == 0 and "reused 12 images" in again.stdout


def test_data_text_writes_jsonl_and_shards(tmp_path):
    out = run("data", "text", str(tmp_path / "txt"), "--n", "50", "--workers", "1")
    assert out.returncode == 0, out.stderr
    lines = (tmp_path / "txt" / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 50 and json.loads(lines[1])["label"] == 1


def test_data_shards_packs_a_users_folder(tmp_path):
    (tmp_path / "mine" / "cats").mkdir(parents=True)
    (tmp_path / "mine" / "cats" / "a.png").write_bytes(b"png bytes")
    out = run("data", "shards", str(tmp_path / "mine"), str(tmp_path / "out"))
    assert out.returncode == 0, out.stderr
    assert "wrote 1 images as Parquet shards" in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--n", "0"], "--n must be a positive number of images, got 0"),
        (["--n", "3", "--classes", "5"], "classes (5) must not exceed n (3)"),
        (["--n", "3", "--size", "big"], "--size must look like 500x375"),
    ],
)
def test_bad_arguments_are_one_line_without_traceback(tmp_path, args, message):
    out = run("data", "image", str(tmp_path / "x"), *args)
    assert out.returncode != 0
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "x").exists()


def test_a_users_folder_is_refused_and_kept(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "me.jpg").write_bytes(b"mine")
    out = run("data", "image", str(tmp_path / "photos"), "--n", "4", "--classes", "2", "--overwrite")
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "exists and is not a feedbench dataset" in lines[0]
    assert (tmp_path / "photos" / "me.jpg").read_bytes() == b"mine"


def test_unwritable_path_and_missing_source_are_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    out = run("data", "text", str(tmp_path / "file" / "corpus"), "--n", "4")
    assert out.returncode == 1 and "cannot write there" in out.stderr and "Traceback" not in out.stderr
    out = run("data", "shards", str(tmp_path / "nowhere"), str(tmp_path / "out"))
    assert out.returncode == 1 and "no such image folder" in out.stderr


def test_help_and_version():
    out = run("data", "image", "--help")
    assert out.returncode == 0 and "--classes" in out.stdout and "--shards" in out.stdout
    out = run("--version")
    assert out.returncode == 0 and out.stdout.startswith("feedbench ")
