import json
import math

import pyarrow as pa

from feedbench.pipelines import RunResult


def _result(**kw):
    base = dict(samples_per_s=100.0, batches_per_s=12.5, starvation=0.1, accelerator_utilization=0.85, ttfb_s=1.5,
                steps=40, samples=320, device="cpu", workload="emulated:20ms", config={"workers": 2})
    return RunResult(**{**base, **kw})


def test_input_bound_is_derived_from_starvation():
    assert _result(starvation=0.01).input_bound == "not"
    assert _result(starvation=0.1).input_bound == "moderately"
    assert _result(starvation=0.5).input_bound == "highly"


def test_json_round_trip_keeps_every_field_and_nan_becomes_null():
    result = _result()
    data = json.loads(result.to_json())
    assert data["wait_p95_s"] is None  # NaN: not measured
    assert data["config"] == {"workers": 2}
    back = RunResult.from_json(result.to_json())
    assert back.samples_per_s == 100.0 and back.config == {"workers": 2} and math.isnan(back.wait_p95_s)
    assert back.to_dict() == result.to_dict()


def test_arrow_rows_form_a_table_with_one_row_per_result():
    table = RunResult.to_table([_result(), RunResult.failed("killed by SIGKILL", config={"workers": 8})])
    assert isinstance(table, pa.Table) and table.num_rows == 2
    assert table.column("samples_per_s").to_pylist() == [100.0, None]
    assert table.column("error").to_pylist() == [None, "killed by SIGKILL"]
    assert json.loads(table.column("config")[1].as_py()) == {"workers": 8}
    assert table.schema.field("peak_device_bytes").type == pa.int64()


def test_a_failed_result_says_why_and_is_not_ok():
    failed = RunResult.failed("timed out", config={"a": 1})
    assert not failed.ok and failed.error == "timed out" and failed.input_bound == ""


def test_truncated_survives_json_dict_and_arrow_and_defaults_to_zero():
    result = _result(truncated=3, skipped=2)
    assert RunResult.from_json(result.to_json()).truncated == 3
    assert RunResult.from_dict(result.to_dict()) == result
    older = {k: v for k, v in result.to_dict().items() if k != "truncated"}  # a row written before the field
    assert RunResult.from_dict(older).truncated == 0
    table = RunResult.to_table([result, RunResult.failed("oom")])
    assert table.schema.field("truncated").type == pa.int64()
    assert table.column("truncated").to_pylist() == [3, 0]
    assert table.column("skipped").to_pylist() == [2, 0]
    assert RunResult.from_dict(table.to_pylist()[0] | {"config": result.config}) == result
