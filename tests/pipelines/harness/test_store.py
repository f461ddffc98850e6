"""store: the results folder, row by row, atomic, resumable, one settings, machine and
dataset per folder, one writing process at a time."""

import json
import math
import os

import pyarrow.parquet as pq
import pytest

from feedbench.pipelines import ConfigError, DatasetError, RunResult
from feedbench.pipelines.harness import store as store_module
from feedbench.pipelines.harness.plan import Settings
from feedbench.pipelines.harness.store import ResultStore, write_atomically
from feedbench.pipelines.loop.config import MeasureConfig


def test_store_writes_json_and_parquet_row_by_row_and_replaces_a_cell(settings, tmp_path, fake_row):
    store = ResultStore.open(tmp_path / "out", settings, resume=False)
    store.add(fake_row(settings, "torch", 0, 100.0))
    store.add(fake_row(settings, "tf", "autotune", ok=False))
    assert len(json.loads((tmp_path / "out" / "results.json").read_text())) == 2
    store.add(fake_row(settings, "torch", 0, 300.0))  # the same cell again: replaced, not doubled
    rows = ResultStore.load(tmp_path / "out").rows
    assert [(r["framework"], r["workers"]) for r in rows] == [("tf", "autotune"), ("torch", 0)]
    assert rows[1]["samples_per_s"] == 300.0
    table = pq.read_table(tmp_path / "out" / "results.parquet")
    assert table.num_rows == 2
    assert table.column("workers").to_pylist() == ["autotune", "0"]
    assert table.column("ok").to_pylist() == [False, True]
    assert table.column("error").to_pylist()[0] == "RuntimeError: boom"
    assert json.loads(table.column("settings")[1].as_py())["options"] == settings.options
    assert math.isnan(RunResult.from_dict(rows[0]).samples_per_s)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["results.json", "results.parquet"]  # no temp files


def test_store_refuses_to_mix_or_to_overwrite(settings, tmp_path, fake_row):
    store = ResultStore.open(tmp_path, settings, resume=False)
    store.add(fake_row(settings, "torch", 0))
    with pytest.raises(ConfigError, match="already holds 1 results; pass --resume"):
        ResultStore.open(tmp_path, settings, resume=False)
    other = Settings(task="image", data=settings.data,
                     measure=MeasureConfig(workload="emulated:7ms", device="cpu", steps=5), options=settings.options)
    with pytest.raises(ConfigError, match="other settings \\(workload: 'emulated:5ms' there, 'emulated:7ms' now\\)"):
        ResultStore.open(tmp_path, other, resume=True)
    assert len(ResultStore.open(tmp_path, settings, resume=True).rows) == 1


def test_store_load_says_what_is_wrong(fault, tmp_path):
    with pytest.raises(DatasetError, match="not a feedbench results folder"):
        ResultStore.load(tmp_path)
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not readable as feedbench results"):
        ResultStore.load(tmp_path)


def test_an_interrupted_write_leaves_the_last_complete_file(fault, tmp_path):
    target = tmp_path / "results.json"
    target.write_text("complete")

    def half_then_interrupt(tmp):
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(target, half_then_interrupt)
    fault.kept(target.read_text() == "complete" and [p.name for p in tmp_path.iterdir()] == ["results.json"],
               "the last complete results file was not kept whole")


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "not readable as feedbench results"),
    ('{"rows": []}', "expected a list of rows, got dict"),
    ("[1]", "row 0 is not a feedbench result \\(a int"),
    ('[{"framework": "torch", "workers": 0}]', "row 0 is not a feedbench result \\(it lacks task, ok, settings"),
])
def test_malformed_results_name_the_file_and_row(fault, tmp_path, text, message):
    (tmp_path / "results.json").write_text(text)
    with pytest.raises(DatasetError, match=message) as info:
        ResultStore.load(tmp_path)
    assert str(tmp_path / "results.json") in str(info.value) and "\n" not in str(info.value)


def test_a_row_with_a_bad_worker_count_names_its_row(fault, settings, tmp_path, fake_row):
    row = fake_row(settings, "torch", 0)
    (tmp_path / "results.json").write_text(json.dumps([row, {**row, "workers": -3}]))
    with pytest.raises(DatasetError, match="results.json: row 1: workers must be"):
        ResultStore.load(tmp_path)


def test_a_folder_of_other_files_is_never_written_into(fault, settings, tmp_path):
    (tmp_path / "report.md").write_text("mine")
    before = fault.digest(tmp_path)
    with pytest.raises(ConfigError, match="not a feedbench results folder"):
        ResultStore.open(tmp_path, settings, resume=False)
    with pytest.raises(ConfigError, match="not a feedbench results folder"):
        ResultStore.open(tmp_path, settings, resume=True)
    fault.unchanged(before, fault.digest(tmp_path), "a folder of the user's files")
    assert ResultStore.open(tmp_path / "empty", settings, resume=False).rows == []  # new or empty: fine


@pytest.mark.parametrize(("key", "value"), [("torch_version", "0.0.1"), ("cpu_cores", 999), ("cpu_model", "other"),
                                            ("data_fingerprint", "3 files, 10 bytes, latest mtime 1")])
def test_resume_refuses_rows_from_another_machine_software_or_dataset(settings, tmp_path, key, value, fake_row):
    store = ResultStore.open(tmp_path, settings, resume=False)
    store.add({**fake_row(settings, "torch", 0), key: value})
    with pytest.raises(ConfigError, match=f"another machine, software or dataset \\({key}: {value!r} there") as info:
        ResultStore.open(tmp_path, settings, resume=True)
    assert "\n" not in str(info.value)


def test_one_process_at_a_time_writes_to_a_folder(settings, tmp_path, fake_row, held_elsewhere):
    out = tmp_path / "out"
    with held_elsewhere(out, settings):
        with pytest.raises(ConfigError, match="another feedbench process is writing to it; wait until it ends"):
            ResultStore.open(out, settings, resume=True)
    with ResultStore.open(out, settings, resume=True) as store:  # released when the other one closed it
        store.add(fake_row(settings, "torch", 0))
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "results.parquet"]  # and no lock file left


def test_a_nested_hold_in_the_same_process_leaves_the_folder_held(settings, tmp_path, fake_row):
    out = tmp_path / "out"
    with ResultStore.open(out, settings, resume=False) as outer:
        outer.add(fake_row(settings, "torch", 0))
        with ResultStore.load(out, hold=True) as inner:  # e.g. the report drawn at the end of a grid
            assert len(inner.rows) == 1
        assert os.path.realpath(out) in store_module._HELD, "the inner store released the outer one's hold"
    assert os.path.realpath(out) not in store_module._HELD
