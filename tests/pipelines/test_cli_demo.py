"""`feedbench demo` through the installed entry point, on a private cache."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

FEEDBENCH = shutil.which("feedbench", path=str(Path(sys.executable).parent))


def test_demo_makes_the_default_datasets_then_reuses_them(tmp_path):
    env = {**os.environ, "FEEDBENCH_CACHE": str(tmp_path)}
    args = [FEEDBENCH, "demo", "--images", "16", "--documents", "40", "--steps", "5"]
    first = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "image folder" in first.stdout and "image shards" in first.stdout and "generated" in first.stdout
    assert (tmp_path / "data" / "images-16" / "manifest.json").is_file()
    assert (tmp_path / "data" / "images-16.parquet" / "part-00000.parquet").is_file()
    assert (tmp_path / "data" / "text-40" / "corpus.jsonl").is_file()
    assert "ground truth" in first.stdout and "consumer-bound" in first.stdout and first.stdout.count(" yes ") + first.stdout.count(" NO ") == 3
    second = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert second.returncode == 0, second.stderr
    assert "generated" not in second.stdout and second.stdout.count("reused") == 3
