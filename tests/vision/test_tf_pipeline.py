import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import functional as F

from feedbench.datasets import scan_image_folder
from feedbench.datasets.parquet import IMAGE_SCHEMA, write_shards
from feedbench.pipelines import DatasetError, measure, stats_of
from feedbench.pipelines.core.errors import described
from feedbench.pipelines.core.frameworks import import_tensorflow, import_tfds
from feedbench.pipelines.registry import build
from feedbench.vision import ImageConfig, tf_dataset
from feedbench.vision._common import looks_like_image, random_resized_crop
from feedbench.vision.tf_pipeline import _crop_window, _decode_train, _file_problem

tf = import_tensorflow()


def _all(dataset):
    batches = list(dataset.as_numpy_iterator())
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def test_eval_gives_files_in_order_and_pixels_like_pillow(small_folder, pil_eval):
    images, labels = _all(tf_dataset(small_folder.root, train=False, shuffle=False, batch_size=5, workers=2,
                                     image_size=64))
    _, samples = scan_image_folder(small_folder.root)
    assert labels.tolist() == [label for _, label in samples]
    assert len(images) == 24  # eval keeps the last short batch
    differences = [float(np.abs(image - pil_eval(path, 64)).mean()) for image, (path, _) in zip(images, samples)]
    assert max(differences) < 0.02, differences  # measured 0.0053 at most (antialiased bilinear, tf vs Pillow)


def test_crop_window_is_the_common_algorithm():
    window = tf.function(
        _crop_window,
        input_signature=[tf.TensorSpec([41], tf.float64), tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32)],
    )
    rng = np.random.default_rng(5)
    fallbacks = 0
    for case in range(300):
        height, width = ((int(rng.integers(1, 700)), int(rng.integers(1, 700))) if case % 3
                         else (int(rng.integers(1, 9)), 500))
        u = rng.random(41)
        if case % 4 == 0:  # areas and ratios that never fit: the center-crop fallback
            u[0:40:4], u[1:40:4] = 0.99, rng.choice([0.0, 0.999], 10)
        expected = random_resized_crop(tuple(u[:40]), height, width)
        got = window(tf.constant(u), height, width).numpy().tolist()
        assert got == [expected.top, expected.left, expected.height, expected.width], (height, width, case)
        fallbacks += (expected.height * expected.width != height * width
                      and expected.top == (height - expected.height) // 2)
    assert fallbacks > 20


def test_train_crop_and_flip_follow_the_drawn_numbers(small_folder):
    cfg = ImageConfig(train=True, image_size=32, output="uint8", workers=0)
    png = next(f for f in small_folder.files if f["format"] == "PNG")
    jpeg = next(f for f in small_folder.files if f["format"] == "JPEG" and f["mode"] == "RGB")
    flipped = set()
    for entry in (jpeg, png):
        data = (small_folder.root / entry["path"]).read_bytes()
        decoded = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
        for s in range(4):
            seed = tf.constant([s, 11], tf.int64)
            u = tf.random.stateless_uniform([41], seed=seed, dtype=tf.float64).numpy()
            got = _decode_train(tf.constant(data), seed, cfg).numpy().astype(np.float64)
            crop = random_resized_crop(tuple(u[:40]), decoded.shape[1], decoded.shape[2])
            ref = F.resized_crop(decoded, crop.top, crop.left, crop.height, crop.width, [32, 32], antialias=True)
            ref = (F.horizontal_flip(ref) if u[40] < 0.5 else ref).permute(1, 2, 0).numpy().astype(np.float64)
            difference, mirrored = np.abs(got - ref).mean(), np.abs(got - ref[:, ::-1]).mean()
            assert difference < 3.0 and mirrored > 2 * difference, (entry["path"], s, difference, mirrored)
            flipped.add(bool(u[40] < 0.5))
    assert flipped == {True, False}


def test_train_is_random_but_repeats_for_a_seed(small_folder):
    def first_epoch(seed, workers):
        return _all(tf_dataset(small_folder.root, batch_size=4, workers=workers, seed=seed, image_size=32))

    a, b, c = first_epoch(1, 0), first_epoch(1, 2), first_epoch(2, 2)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])  # same seed, any number of threads
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[1], c[1])
    dataset = tf_dataset(small_folder.root, batch_size=4, workers=2, seed=1, image_size=32)
    epoch1, epoch2 = _all(dataset), _all(dataset)
    assert np.array_equal(epoch1[0], a[0]) and not np.array_equal(epoch1[0], epoch2[0])
    assert sorted(epoch1[1].tolist()) == sorted(epoch2[1].tolist()) and epoch1[1].tolist() != epoch2[1].tolist()
    again = tf_dataset(small_folder.root, batch_size=4, workers=2, seed=1, image_size=32)
    _all(again)
    assert np.array_equal(_all(again)[0], epoch2[0])  # the second epoch repeats too


def test_train_crops_differ_from_eval(small_folder):
    kw = dict(shuffle=False, batch_size=8, workers=2, image_size=48, output="uint8")
    images, _ = _all(tf_dataset(small_folder.root, **kw))
    eval_images, _ = _all(tf_dataset(small_folder.root, train=False, **kw))
    assert images.shape == (24, 48, 48, 3)
    assert np.abs(images.astype(float) - eval_images.astype(float)).mean() > 10


def test_parquet_shards_give_the_same_batches_as_the_folder(small_folder, small_shards):
    kw = dict(train=False, shuffle=False, batch_size=6, workers=2, image_size=32)
    folder = _all(tf_dataset(small_folder.root, **kw))
    shards = _all(tf_dataset(small_shards.root, **kw))
    assert np.array_equal(folder[1], shards[1]) and np.array_equal(folder[0], shards[0])
    train = tf_dataset(small_shards.root, batch_size=6, workers=2, image_size=32, seed=4)
    epoch1, epoch2 = _all(train), _all(train)
    assert sorted(epoch1[1].tolist()) == sorted(folder[1].tolist()) and not np.array_equal(epoch1[0], epoch2[0])
    fresh = _all(tf_dataset(small_shards.root, batch_size=6, workers=0, image_size=32, seed=4))
    assert np.array_equal(fresh[0], epoch1[0]) and np.array_equal(fresh[1], epoch1[1])


def test_gray_cmyk_and_png_come_out_rgb(small_folder, pil_eval):
    odd = [f for f in small_folder.files if f["mode"] != "RGB" or f["format"] == "PNG"]
    assert {f["mode"] for f in odd} >= {"L", "CMYK"} and any(f["format"] == "PNG" for f in odd)
    images, _ = _all(tf_dataset(small_folder.root, train=False, shuffle=False, batch_size=24, workers=2, image_size=32))
    assert images.shape == (24, 32, 32, 3)
    _, samples = scan_image_folder(small_folder.root)
    by_path = {str(p): i for i, (p, _) in enumerate(samples)}
    for entry in odd:
        path = str(small_folder.root / entry["path"])
        assert float(np.abs(images[by_path[path]] - pil_eval(path, 32)).mean()) < 0.02, entry
        if entry["mode"] == "CMYK":  # colour, not three copies of one channel
            assert np.abs(images[by_path[path]][..., 0] - images[by_path[path]][..., 2]).mean() > 0.05


def test_webp_and_bmp_files_decode_too(small_folder, tmp_path, pil_eval):
    (tmp_path / "a").mkdir()
    source = Image.open(next(small_folder.root.glob("class_000/*.jpg"))).convert("RGB")
    source.save(tmp_path / "a" / "x.webp", lossless=True)
    source.save(tmp_path / "a" / "y.bmp")
    images, _ = _all(tf_dataset(tmp_path, train=False, shuffle=False, batch_size=2, workers=0, image_size=32))
    for image, name in zip(images, ("x.webp", "y.bmp")):
        assert float(np.abs(image - pil_eval(tmp_path / "a" / name, 32)).mean()) < 0.02, name


@pytest.mark.parametrize(
    "data",
    [b"\xff\xd8\xff" + bytes(range(256)) * 40 + b"\xff\xd9", b"\xff\xd8\xff" + bytes(9000) + b"\xff\xd9" + bytes(3000),
     b"\xff\xd8\xff" + bytes(9000) + b"\xff\xd9" + bytes(5000), b"\xff\xd8\xff" + bytes(20),
     b"\x89PNG\r\n\x1a\n" + bytes(9000),
     b"\x89PNG\r\n\x1a\n" + bytes(9000) + b"IEND\xaeB`\x82", b"GIF89a" + bytes(9000), b"hello" * 2000, b""],
)
def test_the_file_check_reads_only_the_ends_but_agrees_with_reading_it_all(tmp_path, data):
    path = tmp_path / "x.jpg"
    path.write_bytes(data)
    assert _file_problem(str(path)) == looks_like_image(data)


def test_drop_last_prefetch_and_workers_settings(small_folder):
    def batches(**kw):
        return [len(labels) for _, labels in tf_dataset(small_folder.root, batch_size=10, image_size=16, **kw)]

    assert batches(workers=0) == [10, 10]  # train drops the short batch
    assert batches(train=False, workers="autotune", prefetch="autotune") == [10, 10, 4]
    assert batches(train=False, drop_last=True, workers=1, prefetch=0) == [10, 10]


def test_a_tfds_builder_gives_the_folder_images(small_folder, tmp_path):
    tfds = import_tfds()
    (tmp_path / "train").symlink_to(small_folder.root, target_is_directory=True)
    builder = tfds.folder_dataset.ImageFolder(str(tmp_path), shape=(None, None, 3))
    kw = dict(train=False, batch_size=5, workers=2, image_size=32, output="uint8")
    images, labels = _all(tf_dataset(builder, shuffle=False, **kw))
    folder_images, folder_labels = _all(tf_dataset(small_folder.root, shuffle=False, **kw))
    assert len(images) == 24  # TFDS has its own order: compare the (image, label) pairs as sets
    assert sorted((x.tobytes(), y) for x, y in zip(images, labels)) == sorted(
        (x.tobytes(), y) for x, y in zip(folder_images, folder_labels)
    )
    train_images, _ = _all(tf_dataset(builder, batch_size=8, workers=2, image_size=32))
    assert train_images.shape == (24, 32, 32, 3) and train_images.dtype == np.float32


WHERE = {"truncated.jpg": "class_000", "empty.jpg": "class_001", "notes.jpg": "class_001", "dangling.jpg": "class_002"}


def _only(root, bad, keep):
    """Leaves only the damaged file `keep` in the broken folder."""
    for name in bad - {keep}:
        (root / WHERE[name] / name).unlink()


@pytest.mark.parametrize(
    ("name", "reason"),
    [("truncated.jpg", "truncated JPEG"), ("empty.jpg", "empty file"), ("notes.jpg", "not a JPEG or PNG"),
     ("dangling.jpg", "unreadable (No such file or directory)")],
)
def test_raise_names_the_bad_file_when_built(broken_folder, name, reason):
    root, bad = broken_folder
    _only(root, bad, name)
    with pytest.raises(DatasetError) as info:
        tf_dataset(root, train=False, batch_size=4, workers=2, image_size=16)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(root / WHERE[name] / name)) and reason in message


def test_raise_counts_the_other_bad_files(broken_folder):
    root, bad = broken_folder
    with pytest.raises(DatasetError, match=r"truncated\.jpg: truncated JPEG .*\(and 3 more bad file\(s\)\)"):
        tf_dataset(root, workers=0)


def test_images_that_pass_the_check_but_do_not_decode_are_named_and_counted(small_folder, tmp_path, caplog):
    root = tmp_path / "corrupt"
    (root / "a").mkdir(parents=True)
    good = sorted(small_folder.root.glob("class_000/*.jpg"))
    for path in good[:3]:
        (root / "a" / path.name).write_bytes(path.read_bytes())
    noise = np.random.default_rng(0).bytes(2000)
    (root / "a" / "zz-noise.jpg").write_bytes(b"\xff\xd8\xff" + noise + b"\xff\xd9")  # header and end look right
    (root / "a" / "a-noise.jpg").write_bytes(b"\xff\xd8\xff" + noise + b"\xff\xd9")  # first, then last
    with pytest.raises(tf.errors.OpError) as info:
        _all(tf_dataset(root, train=False, shuffle=False, batch_size=2, workers=0, image_size=16))
    assert described(info.value).startswith(f"DatasetError: {root / 'a' / 'a-noise.jpg'}: cannot decode (")
    for workers in (0, 2):
        dataset = tf_dataset(root, batch_size=1, workers=workers, image_size=16, on_error="skip")
        assert len(_all(dataset)[1]) == 3 and stats_of(dataset).skipped == 2  # dropped and counted
        assert len(_all(dataset)[1]) == 3 and stats_of(dataset).skipped == 2  # each counted once
    assert "zz-noise.jpg: cannot decode" in caplog.text


@pytest.fixture()
def bad_shards(small_folder, tmp_path):
    """Two Parquet shards of 8 good images, a truncated one (shard 0 row 5) and an empty one
    (shard 1 row 1)."""
    files = sorted(small_folder.root.glob("class_000/*"))
    assert len(files) == 8
    rows = [{"image": p.read_bytes(), "label": 0, "path": f"class_000/{p.name}"} for p in files]
    rows.insert(5, {"image": rows[0]["image"][:500], "label": 1, "path": "class_001/cut.jpg"})
    rows.insert(9, {"image": b"", "label": 2, "path": "class_002/empty.jpg"})
    folder = tmp_path / "shards"
    folder.mkdir()
    write_shards(rows, folder, IMAGE_SCHEMA, rows_per_group=4, rows_per_shard=8)
    return folder


def test_parquet_rows_raise_naming_shard_and_row(bad_shards):
    dataset = tf_dataset(bad_shards, train=False, shuffle=False, batch_size=2, workers=2, image_size=16)
    with pytest.raises(tf.errors.OpError) as info:
        _all(dataset)
    first_line = str(info.value).splitlines()[0]
    assert "DatasetError" in first_line and "part-00000.parquet row 5 (class_001/cut.jpg): truncated JPEG" in first_line


def test_parquet_rows_skip_and_count(bad_shards, caplog):
    dataset = tf_dataset(bad_shards, batch_size=2, workers=2, image_size=16, on_error="skip")
    assert stats_of(dataset).skipped == 0
    _, labels = _all(dataset)
    assert labels.tolist() == [0] * 8 and stats_of(dataset).skipped == stats_of(dataset.take(3)).skipped == 2
    assert "part-00001.parquet row 1 (class_002/empty.jpg): empty file" in caplog.text
    result = measure(tf_dataset(bad_shards, train=False, shuffle=False, batch_size=2, workers=1, image_size=16,
                                on_error="skip"), workload="emulated:1ms", device="cpu", steps=3, warmup=1)
    assert result.skipped == 2


def test_a_folder_of_only_bad_files_is_named_when_skipping(tmp_path):
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "empty.jpg").write_bytes(b"")
    with pytest.raises(DatasetError, match="none of its 1 image files can be read"):
        tf_dataset(tmp_path, workers=0, on_error="skip")


def test_the_registry_builds_it_from_a_config(small_folder):
    cfg = ImageConfig(train=False, shuffle=False, batch_size=24, workers=1, image_size=16, output="uint8")
    dataset = build("image", "tf", str(small_folder.root), cfg)
    images, labels = next(iter(dataset))
    assert isinstance(dataset, tf.data.Dataset) and images.shape == (24, 16, 16, 3) and stats_of(dataset).skipped == 0


@pytest.mark.parametrize(("workers", "prefetch", "expected"), [
    (0, 0, set()),  # tf.data's rewrites would make the map parallel (AUTOTUNE) and add a prefetch
    (0, 2, {("Prefetch", "buffer_size", 2.0)}),
    (3, 0, {("ParallelMapV2", "parallelism", 3.0)}),
])
def test_workers_and_prefetch_are_what_run(small_folder, workers, prefetch, expected):
    from feedbench.pipelines.harness.autotune import autotune_choices

    dataset = tf_dataset(small_folder.root, train=False, batch_size=4, workers=workers, prefetch=prefetch,
                         image_size=32, shuffle=False)
    # the pipeline as built, its own last op last: a repeat() added here would be the last op, and
    # tf.data's inject_prefetch would add an autotuned prefetch after it (a Root::Prefetch, whose
    # buffer is reported only once AUTOTUNE has set it: sometimes within the window)
    assert len(list(dataset)) == 6  # 24 images in batches of 4: warm-up and profiled batches, once
    choices, _ = autotune_choices(dataset, batches=5, warmup=1)
    # the image map (before ignore_errors) and the prefetch buffer; the cheap maps after batching
    # are left to tf.data
    ran = {(c.kind, c.parameter, c.median) for c in choices
           if c.op.endswith("IgnoreErrors::ParallelMapV2") or c.kind == "Prefetch"}
    assert ran == expected, choices
