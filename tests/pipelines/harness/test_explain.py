"""explain's shared processes: the runs a group measured before its process died are kept.

The stages and ceilings against known costs are in tests/pipelines/truth/test_explain_truth.py;
the command on the real pipelines in tests/pipelines/cli/test_explain.py.
"""

import functools
import tempfile

import pytest

from feedbench.pipelines.harness.explain import _Planned, _Runs
from feedbench.pipelines.loop.config import MeasureConfig
from feedbench.pipelines.truth.synthetic import SleepProducer, misbehaving

GOOD = functools.partial(SleepProducer, 0.001, batch_size=2)


@pytest.mark.parametrize(("how", "why"), [("sigkill", "killed by SIGKILL"), ("segfault", "killed by SIGSEGV")])
def test_the_runs_before_a_crash_are_kept_and_the_rest_fail_naming_why(tmp_path, monkeypatch, how, why):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the group's journal is kept
    reported = []
    runs = _Runs("synthetic", lambda *_: None, lambda framework, role, result: reported.append((role, result)))
    measure = MeasureConfig(workload="emulated:1ms", device="cpu", steps=5, warmup=1, cpus=1, limit_s=60)
    planned = [_Planned("first", GOOD, {"workers": 0}), _Planned("second", functools.partial(misbehaving, how), {}),
               _Planned("third", GOOD, {"workers": 0})]
    by_role, autotune = runs.shared("a group", planned, measure)

    (first,) = by_role["first"]
    assert first.ok and first.steps == 5 and first.samples_per_s > 0 and first.config["role"] == "first"
    (second,) = by_role["second"]
    assert not second.ok and second.error.startswith("the runs' process failed during this run: ")
    assert why in second.error
    (third,) = by_role["third"]
    assert not third.ok and third.error.startswith("the runs' process failed before this run: ") and why in third.error
    assert [role for role, _ in reported] == ["first", "second", "third"] and reported[0][1] is first
    assert autotune is None
    assert list(tmp_path.iterdir()) == []  # the journal is removed


def test_a_group_that_ends_well_reports_every_run_and_leaves_no_journal(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    runs = _Runs("synthetic", lambda *_: None, lambda *_: None)
    measure = MeasureConfig(workload="emulated:1ms", device="cpu", steps=4, warmup=1, cpus=1, limit_s=60)
    by_role, _ = runs.shared("a group", [_Planned("one", GOOD, {}), _Planned("two", GOOD, {})], measure, repeats=2)
    assert {role: [r.ok and r.steps == 4 for r in results] for role, results in by_role.items()} == \
        {"one": [True, True], "two": [True, True]}
    assert list(tmp_path.iterdir()) == []
