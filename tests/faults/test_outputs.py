"""Where the results go: a full disk, a read-only one, a folder that is not there. A command
checks what it can before it measures; what it measured is printed before an output error,
never lost; the error is one line naming the file."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FEEDBENCH = shutil.which("feedbench", path=str(Path(sys.executable).parent))
UNSHARE = shutil.which("unshare")


def _can_mount():
    if not UNSHARE:
        return False
    done = subprocess.run([UNSHARE, "-rm", "sh", "-c", "mount -t tmpfs -o size=64k none /mnt"], capture_output=True)
    return done.returncode == 0


needs_mount = pytest.mark.skipif(not _can_mount(), reason="no user and mount namespaces here (unshare -rm) "
                                 "to make a small full or read-only file system")


def _measure_args(small_folder):
    return ["--task", "image", "--data", str(small_folder.root), "--batch-size", "4", "--option", "image_size=16",
            "--workload", "emulated:1ms", "--device", "cpu", "--steps", "2", "--warmup", "1"]


def _in_small_fs(tmp_path, mount_options, setup, command):
    """Runs `command` (a feedbench argument list) with `tmp_path/fs` a 64 KiB tmpfs, in a
    private mount namespace (gone, with the tmpfs, when the command ends)."""
    fs = tmp_path / "fs"
    fs.mkdir()
    script = (f"mount -t tmpfs -o size=64k none {fs} && {setup} && mount -o remount,{mount_options} {fs} && "
              f'exec "$@"')
    return subprocess.run([UNSHARE, "-rm", "sh", "-c", script, "sh", FEEDBENCH, *command], capture_output=True,
                          text=True, timeout=300)


def _on_a_full_disk(tmp_path, command, written, setup=""):
    """`command` run with `tmp_path/fs` filled up after `setup`; checks that it failed with one
    line naming the file `written` (under fs) and returns the finished process."""
    fs = tmp_path / "fs"
    done = _in_small_fs(tmp_path, "rw", f"{setup}head -c 1000000 /dev/zero > {fs}/fill; true", command)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"feedbench: error: {fs / written}: cannot write it (No space left on device)")
    return done


@needs_mount
def test_compare_on_a_full_disk_prints_the_measured_table_then_one_line(fault, small_folder, tmp_path):
    fs = tmp_path / "fs"
    done = _on_a_full_disk(tmp_path, ["compare", *_measure_args(small_folder), "--frameworks", "torch",
                                      "--workers", "0", "--out", str(fs / "cmp")],
                           "cmp/results.json", setup=f"mkdir {fs}/cmp && ")
    row = [line for line in done.stdout.splitlines() if "torch" in line and "│" in line]
    fault.kept(len(row) == 1 and float(row[0].split("│")[3]) > 0, "the measured table was not printed")


@needs_mount
def test_run_json_on_a_full_disk_prints_the_figures_then_one_line(fault, small_folder, tmp_path):
    done = _on_a_full_disk(tmp_path, ["run", *_measure_args(small_folder), "--framework", "torch", "--workers", "0",
                                      "--json", str(tmp_path / "fs" / "row.json")], "row.json")
    fault.kept("throughput" in done.stdout and "samples/s" in done.stdout, "the run's figures were not printed")


@needs_mount
@pytest.mark.parametrize("command", ["compare", "run"])
def test_a_read_only_destination_fails_before_measuring(fault, small_folder, tmp_path, command):
    fs = tmp_path / "fs"
    where = (["--frameworks", "torch", "--workers", "0", "--out", str(fs / "cmp")] if command == "compare"
             else ["--framework", "torch", "--workers", "0", "--json", str(fs / "row.json")])
    done = _in_small_fs(tmp_path, "ro", f"mkdir {fs}/cmp", [command, *_measure_args(small_folder), *where])
    assert done.returncode == 1
    what = f"--out {fs / 'cmp'}" if command == "compare" else f"--json's folder {fs}"
    assert done.stderr.strip().splitlines() == [f"feedbench: error: {what}: cannot write there (Read-only file system)"]
    assert done.stdout == ""  # nothing was measured


def test_run_json_into_a_folder_that_is_not_there_fails_before_measuring(fault, small_folder, tmp_path):
    done = subprocess.run([FEEDBENCH, "run", *_measure_args(small_folder), "--framework", "torch", "--workers", "0",
                           "--json", str(tmp_path / "nope" / "row.json")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"feedbench: error: --json's folder {tmp_path / 'nope'}: cannot write there (No such file or directory)"]
