import pickle

import pytest

from feedbench.datasets import ParquetShards, make_image_shards, scan_image_folder
from feedbench.pipelines.core.errors import ConfigError, DatasetError


@pytest.fixture(scope="module")
def image_shards(image_folder, tmp_path_factory):
    return make_image_shards(image_folder.root, tmp_path_factory.mktemp("s") / "shards", rows_per_group=8,
                             rows_per_shard=16)


def test_image_shards_hold_the_files_bytes_and_labels(image_folder, image_shards):
    _, samples = scan_image_folder(image_folder.root)
    rows = list(ParquetShards(image_shards.root).iter_rows())
    assert len(rows) == len(samples) == 40
    for row, (path, label) in zip(rows, samples):
        assert row["image"] == path.read_bytes()
        assert row["label"] == label
        assert row["path"] == path.relative_to(image_folder.root).as_posix()


def test_row_groups_are_indexed_across_shards(image_shards):
    reader = ParquetShards(image_shards.root)
    assert len(reader) == 40
    assert [g.rows for g in reader.groups] == [8, 8, 8, 8, 8]
    assert [g.start for g in reader.groups] == [0, 8, 16, 24, 32]
    assert [g.shard.name for g in reader.groups] == ["part-00000.parquet"] * 2 + ["part-00001.parquet"] * 2 + [
        "part-00002.parquet"
    ]
    assert reader.locate(0) == (0, 0) and reader.locate(17) == (2, 1) and reader.locate(39) == (4, 7)
    with pytest.raises(IndexError):
        reader.locate(40)


def test_random_access_matches_streaming(image_shards):
    reader = ParquetShards(image_shards.root, columns=["label", "path"])
    rows = list(reader.iter_rows())
    for i in (0, 9, 39, 8, 7):
        assert reader.row(i) == rows[i]
    assert reader.column("label").to_pylist() == [r["label"] for r in rows]


def test_split_gives_every_group_to_exactly_one_worker(image_shards):
    reader = ParquetShards(image_shards.root)
    parts = [reader.split(k, 3) for k in range(3)]
    assert sorted(g for part in parts for g in part) == list(range(5))
    with pytest.raises(ConfigError):
        reader.split(3, 3)


def test_reader_pickles_without_open_state(image_shards):
    reader = ParquetShards(image_shards.root)
    reader.row(3)
    clone = pickle.loads(pickle.dumps(reader))
    assert clone._cache is None
    assert clone.row(3) == reader.row(3)


def test_shards_are_reused_until_the_source_changes(image_folder, image_shards, tmp_path):
    again = make_image_shards(image_folder.root, image_shards.root, rows_per_group=8, rows_per_shard=16)
    assert again.reused


def test_a_users_folder_is_read_not_written(tmp_path):
    user = tmp_path / "mine"
    for name in ("cats", "dogs"):
        (user / name).mkdir(parents=True)
        (user / name / "a.JPG").write_bytes(b"\xff\xd8 not really a jpeg")
    (user / "notes.txt").write_text("not a class")
    before = sorted(str(p) for p in user.rglob("*"))
    shards = make_image_shards(user, tmp_path / "out")
    rows = list(ParquetShards(shards.root).iter_rows())
    assert [(r["path"], r["label"]) for r in rows] == [("cats/a.JPG", 0), ("dogs/a.JPG", 1)]
    assert sorted(str(p) for p in user.rglob("*")) == before


@pytest.mark.parametrize("layout", ["missing", "empty", "class-without-images"])
def test_bad_image_folders_are_named(tmp_path, layout):
    root = tmp_path / "src"
    if layout != "missing":
        root.mkdir()
    if layout == "class-without-images":
        (root / "cats").mkdir()
        (root / "cats" / "readme.txt").write_text("x")
    expected = {"missing": "no such image folder", "empty": "no class folders",
                "class-without-images": "cats: class folder with no image"}
    with pytest.raises(DatasetError, match=expected[layout]):
        make_image_shards(root, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_reader_errors_name_the_path(tmp_path):
    with pytest.raises(DatasetError, match="no such Parquet"):
        ParquetShards(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no \\*.parquet shards"):
        ParquetShards(tmp_path / "empty")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DatasetError, match="bad.parquet: not a readable Parquet file"):
        ParquetShards(tmp_path / "bad.parquet")
