"""Atomic, idempotent generation that never touches what is not a feedbench dataset."""

import json
import os

import pytest

from feedbench.datasets import images, load, make_image_folder
from feedbench.pipelines.core.errors import DatasetError

SMALL = {"classes": 2, "size": (64, 48), "workers": 1}


def test_same_arguments_reuse_a_verified_dataset(tmp_path):
    first = make_image_folder(tmp_path / "d", 6, **SMALL)
    stamp = (first.root / "manifest.json").stat().st_mtime_ns
    again = make_image_folder(tmp_path / "d", 6, **SMALL)
    assert not first.reused and again.reused
    assert again.files == first.files
    assert (first.root / "manifest.json").stat().st_mtime_ns == stamp


def test_other_arguments_are_refused_and_nothing_changes(tmp_path):
    make_image_folder(tmp_path / "d", 6, **SMALL)
    before = sorted(p.name for p in (tmp_path / "d").rglob("*"))
    with pytest.raises(DatasetError, match=r"other arguments \(n=6 \(asked 8\)\)"):
        make_image_folder(tmp_path / "d", 8, **SMALL)
    assert sorted(p.name for p in (tmp_path / "d").rglob("*")) == before


def test_overwrite_replaces_a_feedbench_dataset(tmp_path):
    make_image_folder(tmp_path / "d", 6, **SMALL)
    replaced = make_image_folder(tmp_path / "d", 8, overwrite=True, **SMALL)
    assert len(replaced.files) == 8
    assert len(list((tmp_path / "d").rglob("*.jpg")) + list((tmp_path / "d").rglob("*.png"))) == 8
    assert [p.name for p in tmp_path.iterdir()] == ["d"]  # no temporary or old folder left


def test_a_modified_file_is_found_and_named(tmp_path):
    data = make_image_folder(tmp_path / "d", 6, **SMALL)
    victim = data.root / data.files[3]["path"]
    victim.write_bytes(victim.read_bytes()[:-10] + b"0123456789")  # same size, other bytes
    with pytest.raises(DatasetError, match=f"{victim}: contents differ"):
        make_image_folder(tmp_path / "d", 6, **SMALL)
    victim.unlink()
    with pytest.raises(DatasetError, match=f"{victim}: listed in"):
        load(data.root)


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_that_is_not_a_dataset_is_never_touched(tmp_path, overwrite):
    user = tmp_path / "photos"
    (user / "holiday").mkdir(parents=True)
    (user / "holiday" / "beach.jpg").write_bytes(b"mine")
    with pytest.raises(DatasetError, match=r"photos: exists and is not a feedbench dataset"):
        make_image_folder(user, 6, overwrite=overwrite, **SMALL)
    assert (user / "holiday" / "beach.jpg").read_bytes() == b"mine"
    assert [p.name for p in tmp_path.iterdir()] == ["photos"]


def test_a_file_in_the_way_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(DatasetError, match="exists and is not a folder"):
        make_image_folder(tmp_path / "f", 6, **SMALL)
    assert (tmp_path / "f").read_text() == "x"


def test_an_unwritable_path_is_one_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetError, match="cannot write there"):
        make_image_folder(tmp_path / "file" / "sub" / "d", 6, **SMALL)


def test_an_empty_folder_is_used(tmp_path):
    (tmp_path / "d").mkdir()
    data = make_image_folder(tmp_path / "d", 4, **SMALL)
    assert len(data.files) == 4 and (tmp_path / "d" / "manifest.json").exists()


def test_a_crash_part_way_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    calls = []

    def paint_then_fail(indices, tmp, params):
        calls.append(indices)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return original(indices, tmp, params)

    original = images._paint_chunk
    monkeypatch.setattr(images, "_paint_chunk", paint_then_fail)
    with pytest.raises(RuntimeError, match="disk on fire"):
        make_image_folder(tmp_path / "d", 40, **SMALL)
    assert list(tmp_path.iterdir()) == []


def test_a_killed_generation_leaves_only_a_hidden_folder_that_the_next_run_removes(tmp_path):
    # What a SIGKILL leaves: a temporary sibling of a process that no longer exists.
    stale = tmp_path / ".d.feedbench-tmp-999999999-abcd"
    (stale / "class_000").mkdir(parents=True)
    assert not (tmp_path / "d").exists()
    make_image_folder(tmp_path / "d", 4, **SMALL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_manifest_of_another_kind_or_format_is_refused(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(DatasetError, match="not a feedbench manifest"):
        make_image_folder(tmp_path / "d", 4, **SMALL)
    assert os.listdir(tmp_path / "d") == ["manifest.json"]
