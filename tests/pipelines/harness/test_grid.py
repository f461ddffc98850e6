"""grid: settings checked before anything runs, cells, one real isolated cell, and running
the cells a results folder lacks (tests/pipelines/test_store.py tests the folder itself)."""

import json

import pytest

from feedbench.pipelines import ConfigError, DatasetError, RunResult, stats_of
from feedbench.pipelines.core.machine import usable_cpus
from feedbench.pipelines.harness import grid, plan
from feedbench.pipelines.harness.grid import Measurer
from feedbench.pipelines.harness.plan import Cell, Settings
from feedbench.pipelines.harness.store import ResultStore
from feedbench.pipelines.loop.config import DEFAULT_STEPS, MeasureConfig

TINY = {"batch_size": 4, "image_size": 32}


def test_settings_resolve_defaults_and_normalize(settings, small_folder):
    assert settings.data == str(small_folder.root.resolve())
    assert settings.cpus == len(usable_cpus()) and settings.measure.steps == 5 and settings.measure.warmup == "auto"
    assert Settings(task="image", data=small_folder.root).measure.steps == DEFAULT_STEPS
    odd = Settings(task="image", data=small_folder.root, measure=MeasureConfig(workload="Emulated:0.02s"))
    assert odd.measure.workload == "emulated:20ms"
    assert settings.to_dict()["options"] == TINY and json.dumps(settings.to_dict())
    assert settings.to_dict()["steps"] == 5 and settings.to_dict()["cpus"] == settings.cpus  # flat, as saved


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"task": "video"}, ConfigError, "unknown task 'video'; choose image"),
        ({"data": "/nowhere/at/all"}, DatasetError, "/nowhere/at/all: no such dataset"),
        ({"options": {"workers": 2}}, ConfigError, "workers is set per cell"),
        ({"measure": {"steps": 5}}, ConfigError, "Settings.measure must be a MeasureConfig"),
    ],
)
def test_bad_settings_are_refused_naming_what(small_folder, kwargs, error, message):
    with pytest.raises(error, match=message):
        Settings(**{"task": "image", "data": small_folder.root, **kwargs})


def test_a_folder_that_is_no_image_dataset_is_refused_before_any_run(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty"):
        Settings(task="image", data=tmp_path / "empty")


def test_cuda_where_there_is_none_is_refused():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="torch sees no CUDA device"):
        Settings(task="image", data=".", measure=MeasureConfig(device="cuda"))


def test_unknown_framework_or_option_is_refused(settings):
    with pytest.raises(ConfigError, match="unknown framework 'jax'"):
        settings.check_frameworks(["torch", "jax"])
    bad = Settings(task="image", data=settings.data, options={"colour": "red"})
    with pytest.raises(ConfigError, match="unknown option.*colour"):
        bad.check_frameworks(["torch"])


def test_cells_go_worker_count_by_worker_count_and_check_workers():
    assert [c.label for c in plan.cells(["torch", "tf"], [0, 2])] == [
        "torch workers=0", "tf workers=0", "torch workers=2", "tf workers=2"]
    assert Cell("tf", "autotune").workers == "autotune"
    for bad in (-1, "many", True):
        with pytest.raises(ConfigError, match="workers must be an integer >= 0 or 'autotune'"):
            Cell("tf", bad)


def test_auto_warmup_drains_what_the_workers_made_ahead():
    cpus = len(usable_cpus())
    assert plan.auto_warmup(0, 2) == 4
    assert plan.auto_warmup(4, 2) == 20
    assert plan.auto_warmup("autotune", "autotune") == 2 * cpus * 2 + 4
    assert plan.auto_warmup(4, 0) == 2 * 4 * 1 + 4  # prefetch 0: torch still keeps one batch per worker
    assert plan.auto_warmup(3, "autotune") == 2 * 3 * 2 + 4


def test_auto_warmup_follows_the_prefetch_the_pipeline_uses(small_folder):
    measure = MeasureConfig(device="cpu", steps=5)
    settings = Settings(task="image", data=small_folder.root, measure=measure, options={**TINY, "prefetch": 0})
    deep = Settings(task="image", data=small_folder.root, measure=measure, options={**TINY, "prefetch": 5})
    for spec, expected in ((plan.cell_spec(settings, Cell("torch", 3)), 2 * 3 * 1 + 4),
                           (plan.cell_spec(deep, Cell("tf", 1)), 2 * 1 * 5 + 4)):
        # resolved in the run, from what its loader reports it makes ahead
        assert spec.measure.warmup == "auto"
        assert spec.measure.warmup_steps(stats_of(spec.loader()).batches_ahead) == expected


def test_cell_spec_carries_the_settings_and_the_cell(settings):
    spec = plan.cell_spec(settings, Cell("torch", 1))
    assert spec.measure.cpus == settings.cpus and spec.measure.steps == 5 and spec.measure.device == "cpu"
    assert spec.measure.warmup == "auto"
    assert spec.config["framework"] == "torch" and spec.config["workers"] == 1 and spec.config["image_size"] == 32


def test_one_real_cell_gives_a_row_with_every_field(settings):
    row = grid.run_cell(settings, Cell("torch", 0), command="test")
    assert row["ok"], row["error"]
    for name in RunResult.__dataclass_fields__:
        assert name in row
    assert row["framework"] == "torch" and row["workers"] == 0 and row["command"] == "test"
    assert row["samples_per_s"] > 0 and row["steps"] == 5 and row["config"]["cpu_ids"]
    assert row["settings"] == settings.to_dict()
    assert row["cpu_cores"] >= 1 and row["cpu_model"] and row["torch_version"] and "tensorflow_version" in row
    assert RunResult.from_dict(row).samples_per_s == row["samples_per_s"]


def test_run_grid_skips_saved_cells_and_keeps_each_row_as_it_comes(settings, tmp_path, monkeypatch, fake_row):
    ran = []

    def fake_run_cell(s, cell, *, command):
        if cell == Cell("tf", 1):
            raise KeyboardInterrupt  # an interrupt during the third cell
        ran.append(cell)
        return fake_row(s, cell.framework, cell.workers)

    monkeypatch.setattr(grid, "run_cell", fake_run_cell)
    store = ResultStore.open(tmp_path, settings, resume=False)
    store.add(fake_row(settings, "torch", 0))
    cells = plan.cells(["torch", "tf"], [0, 1])
    with pytest.raises(KeyboardInterrupt):
        grid.run_grid(settings, cells, store, command="test")
    assert ran == [Cell("tf", 0), Cell("torch", 1)]
    assert len(ResultStore.load(tmp_path).rows) == 3  # saved before the interrupt

    monkeypatch.setattr(grid, "run_cell",
                        lambda s, cell, *, command: (ran.append(cell), fake_row(s, cell.framework, cell.workers))[1])
    started = []
    resumed = ResultStore.open(tmp_path, settings, resume=True)
    assert grid.run_grid(settings, cells, resumed, command="test",
                         on_start=lambda c, i, n: started.append((c, i, n))) == (1, 3)
    assert started == [(Cell("tf", 1), 1, 1)] and len(ResultStore.load(tmp_path).rows) == 4


def test_a_run_that_shared_its_cpus_is_measured_again_when_asked(settings, tmp_path, monkeypatch, fake_row):
    contentions = iter([0.4, 0.2, 0.3, 0.0])  # the first cell three times (the least kept), the second once
    ran = []

    def fake_run_cell(s, cell, *, command):
        ran.append(cell)
        return fake_row(s, cell.framework, cell.workers, contention=next(contentions))

    monkeypatch.setattr(grid, "run_cell", fake_run_cell)
    cells = plan.cells(["torch"], [0, 1])
    with ResultStore.open(tmp_path, settings, resume=False, retry_contended=True) as store:
        grid.run_grid(settings, cells, store, command="test")
    assert ran == [Cell("torch", 0)] * grid.CONTENDED_TRIES + [Cell("torch", 1)]
    assert [row["contention"] for row in ResultStore.load(tmp_path).rows] == [0.2, 0.0]
    # Saved, a contended run counts as measured unless asked otherwise.
    with ResultStore.open(tmp_path, settings, resume=True) as store:
        assert store.measured(Cell("torch", 0)) is not None
    with ResultStore.open(tmp_path, settings, resume=True, retry_contended=True) as store:
        assert store.measured(Cell("torch", 0)) is None and store.measured(Cell("torch", 1)) is not None


def test_failed_cells_run_again_only_when_asked(settings, tmp_path, monkeypatch, fake_row):
    monkeypatch.setattr(grid, "run_cell", lambda s, cell, *, command: fake_row(s, cell.framework, cell.workers, 77.0))
    with ResultStore.open(tmp_path, settings, resume=False) as store:
        store.add(fake_row(settings, "torch", 0, ok=False))
        store.add(fake_row(settings, "torch", 1, 10.0))
    cells = plan.cells(["torch"], [0, 1])
    with ResultStore.open(tmp_path, settings, resume=True) as store:
        assert grid.run_grid(settings, cells, store, command="test") == (0, 2)
    with ResultStore.open(tmp_path, settings, resume=True, retry_failed=True) as store:
        assert store.measured(Cell("torch", 0)) is None and store.measured(Cell("torch", 1))["samples_per_s"] == 10.0
        assert grid.run_grid(settings, cells, store, command="test") == (1, 1)
    assert {r["workers"]: (r["ok"], r["samples_per_s"]) for r in ResultStore.load(tmp_path).rows} == {
        0: (True, 77.0), 1: (True, 10.0)}


def test_measurer_reads_saved_cells_back_and_runs_the_rest(settings, tmp_path, monkeypatch, fake_row):
    monkeypatch.setattr(grid, "run_cell", lambda s, cell, *, command: fake_row(s, cell.framework, cell.workers, 50.0))
    store = ResultStore.open(tmp_path, settings, resume=False)
    store.add(fake_row(settings, "torch", 1, 123.0))
    measure = Measurer(settings, "torch", store)
    assert measure(1).samples_per_s == 123.0
    assert measure(2).samples_per_s == 50.0
    assert (measure.ran, measure.reused) == (1, 1)
    assert {r["workers"] for r in ResultStore.load(tmp_path).rows} == {1, 2}


def test_the_data_fingerprint_changes_with_the_dataset(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"123")
    before = plan.data_fingerprint(tmp_path)
    assert before.startswith("1 files, 3 bytes")
    (tmp_path / "b.jpg").write_bytes(b"4")
    assert plan.data_fingerprint(tmp_path) != before and plan.data_fingerprint(tmp_path).startswith("2 files, 4 bytes")
    (tmp_path / "manifest.json").write_text("{}")
    assert plan.data_fingerprint(tmp_path).startswith("manifest.json: 2 bytes")


def test_the_gpu_is_named_without_creating_a_cuda_context(monkeypatch):
    from types import SimpleNamespace

    from feedbench.pipelines.core import machine as _machine

    asked = []
    cuda = SimpleNamespace(is_initialized=lambda: False, is_available=lambda: True,
                           get_device_name=lambda index: asked.append(index) or "Fake GPU")
    monkeypatch.setitem(__import__("sys").modules, "torch", SimpleNamespace(cuda=cuda))
    monkeypatch.setattr(_machine.shutil, "which", lambda name: None)
    assert _machine.gpu_name() is None and asked == []  # CUDA not initialised: torch is not asked
    monkeypatch.setattr(cuda, "is_initialized", lambda: True)
    assert _machine.gpu_name() == "Fake GPU" and asked == [0]
