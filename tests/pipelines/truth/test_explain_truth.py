"""``feedbench explain`` against pipelines of known per-stage cost (truth/staged.py), on the CPU.

For torch and tf.data, one explain at 2 workers on 2 CPUs against ``emulated:180ms``: each stage
must come out within 10% of its known cost or 0.1 ms, whichever is larger; delivery within
0.1 ms of 0 (batches of a few hundred bytes); the workload, replay and warm ceilings within 3%
of one batch a step (the costs make 2 workers half as fast again as the workload, so the warm
ceiling is the workload's); and the workers needed what the known costs give. The known costs
are far enough apart that stages shifted by one, or delivery taken for batching, miss them.

Windows of 16 batches of 128 samples: the loop reads its process tree's memory just before its
window (60-90 ms on one CPU, with a worker and the fork server it came from) while a worker goes
on making batches, so the one-worker run starts its window that far ahead, and its cost comes
out lower by head start / samples in the window: 0.03-0.045 ms a sample here, 0.3 ms with
windows of 12 batches of 16. Delivery is that difference, so the window has to be this long.

A busy machine does not make a false failure, and the tolerances stay: explain measures a run
that shared its CPUs again (up to three runs); a check that misses while a run it rests on
still shared its CPUs (contention above 0.05, measured by the run itself) is skipped with the
contention. A check that misses while its runs had their CPUs to themselves fails.
"""

import math

import pytest

from feedbench.pipelines.harness.explain import ExplainPlan, explain_framework
from feedbench.pipelines.loop.config import MeasureConfig
from feedbench.pipelines.loop.metrics import contended
from feedbench.pipelines.truth.staged import BATCH, STAGES, StageCosts, staged_probe

COSTS = StageCosts()
STEP_S = 0.180
WORKERS = 2
TARGET_AU = 0.9
STAGE_RELATIVE, STAGE_ABSOLUTE_S = 0.10, 1e-4
DELIVER_S = 1e-4
ONE_WORKER_RELATIVE = 0.05
CEILING_RELATIVE = 0.03
FRACTION_TOLERANCE = 0.03
PREFIXES = tuple(f"prefix {stage}" for stage in STAGES)


def _plan() -> ExplainPlan:
    measure = MeasureConfig(workload=f"emulated:{STEP_S * 1e3:g}ms", device="cpu", steps=16, warmup=4, cpus=2,
                           limit_s=120)
    return ExplainPlan(measure, workers=WORKERS, target_au=TARGET_AU, repeats=1, retry_contended=True)


@pytest.fixture(scope="module", params=["torch", "tf"])
def explained(request):
    """(What explain found for the framework, the least contention of each run role's tries.)"""
    least: dict[str, float] = {}

    def on_result(framework, role, result):
        if result.ok and not math.isnan(result.contention):
            least[role] = min(least.get(role, math.inf), result.contention)

    found = explain_framework(staged_probe(request.param, COSTS), _plan(), on_result=on_result)
    return found, least


def _verdict(misses: list[str], least: dict[str, float], roles: tuple[str, ...]) -> None:
    """Fails with `misses`, unless a run they rest on shared its CPUs in every try: then skips."""
    busy = {role: least[role] for role in roles if contended(least.get(role))}
    if misses and busy:
        shared = ", ".join(f"{contention:.0%} of the {role} run's" for role, contention in busy.items())
        pytest.skip(f"the machine was busy: other processes took {shared} CPUs in every try ({'; '.join(misses)})")
    assert not misses, "; ".join(misses)


def test_the_known_costs_make_the_checks_sharp():
    """The truth itself: stages far enough apart that a shift by one misses every tolerance, and
    2 workers half as fast again as the workload, which 1 worker could not feed."""
    known = [COSTS.cost_s(stage) for stage in (*STAGES, BATCH)] + [0.0]  # deliver last
    for cost, after in zip(known, known[1:]):  # either taken for the other misses by 0.05 ms at least
        assert abs(cost - after) > max(STAGE_ABSOLUTE_S, STAGE_RELATIVE * max(cost, after)) + 0.05e-3
    assert COSTS.one_worker_s == pytest.approx(1.8e-3)
    demand = COSTS.workload_samples_per_s(STEP_S)
    assert demand == pytest.approx(711.1, abs=0.1)
    assert COSTS.workers_needed(STEP_S, target_au=TARGET_AU) == 2  # 0.9 x 711 x 1.8 ms = 1.15
    for framework in ("torch", "tf"):
        assert COSTS.workers_samples_per_s(framework, WORKERS) >= 1.5 * demand
        assert COSTS.warm_samples_per_s(framework, WORKERS, STEP_S) == demand
        assert COSTS.workers_samples_per_s(framework, 1) < demand


def test_each_stage_costs_what_it_was_given(explained):
    found, least = explained
    misses = []
    for stage in (*STAGES, BATCH):
        known, measured = COSTS.cost_s(stage), found.stage(stage).seconds_per_sample
        if abs(measured - known) > max(STAGE_ABSOLUTE_S, STAGE_RELATIVE * known):
            misses.append(f"{stage}: {measured * 1e3:.3f} ms a sample, known {known * 1e3:.3f} ms")
    _verdict(misses, least, (*PREFIXES, "no worker"))


def test_delivering_tiny_batches_costs_next_to_nothing(explained):
    found, least = explained
    deliver = found.stage("deliver").seconds_per_sample
    misses = [f"deliver: {deliver * 1e3:+.3f} ms a sample"] if abs(deliver) > DELIVER_S else []
    if abs(found.one_worker_s / COSTS.one_worker_s - 1) > ONE_WORKER_RELATIVE:
        misses.append(f"one worker: {found.one_worker_s * 1e3:.3f} ms a sample, known {COSTS.one_worker_s * 1e3:.3f}")
    _verdict(misses, least, ("no worker", "one worker"))


def test_the_workload_and_replay_ceilings_are_one_batch_a_step(explained):
    found, least = explained
    expected = {"workload": COSTS.workload_samples_per_s(STEP_S), "replay": COSTS.replay_samples_per_s(STEP_S)}
    misses = []
    for name, value in expected.items():
        ceiling = found.ceiling(name)
        if not ceiling.ok or abs(ceiling.samples_per_s / value - 1) > CEILING_RELATIVE:
            misses.append(f"{name}: {ceiling.samples_per_s:.1f} samples/s, known {value:.1f} ({ceiling.note})")
        elif abs(ceiling.accelerator_utilization - 1) > FRACTION_TOLERANCE:
            misses.append(f"{name}: AU {ceiling.accelerator_utilization:.3f}, known 1")
    _verdict(misses, least, ("workload", "replay"))


def test_the_warm_ceiling_is_the_workloads_when_the_workers_outrun_it(explained):
    found, least = explained
    warm, value = found.ceiling("warm"), COSTS.warm_samples_per_s(found.framework, WORKERS, STEP_S)
    misses = []
    if not warm.ok or abs(warm.samples_per_s / value - 1) > CEILING_RELATIVE:
        misses.append(f"warm: {warm.samples_per_s:.1f} samples/s, known {value:.1f} ({warm.note})")
    cold = found.ceiling("cold")
    assert not cold.ok and cold.note == "no files to evict"
    _verdict(misses, least, ("warm",))


def test_the_consumer_stages_are_the_emulated_step_and_no_copy(explained):
    """copy and step, per sample, from the warm run: nothing to copy to the CPU, and a step of
    STEP_S for each batch of batch_size."""
    found, least = explained
    assert found.samples_per_step == COSTS.batch_size
    step, copy = found.stage("step").seconds_per_sample, found.stage("copy").seconds_per_sample
    misses = []
    if abs(step / (STEP_S / COSTS.batch_size) - 1) > CEILING_RELATIVE:
        misses.append(f"step: {step * 1e3:.4f} ms a sample, known {STEP_S / COSTS.batch_size * 1e3:.4f}")
    if abs(copy) > DELIVER_S:
        misses.append(f"copy: {copy * 1e3:.4f} ms a sample, known 0")
    _verdict(misses, least, ("warm",))


def test_the_workers_needed_follow_from_the_stages_and_the_workload(explained):
    found, least = explained
    needed = found.needed
    assert needed is not None
    assert needed.one_worker_s == found.one_worker_s
    assert needed.demand_samples_per_s == found.ceiling("workload").samples_per_s
    misses = []
    if needed.workers != COSTS.workers_needed(STEP_S, target_au=TARGET_AU):
        misses.append(f"{needed.workers} workers needed, known {COSTS.workers_needed(STEP_S, target_au=TARGET_AU)} "
                      f"({TARGET_AU} x {needed.demand_samples_per_s:.1f}/s x {needed.one_worker_s * 1e3:.3f} ms)")
    if needed.checked_workers != WORKERS or abs(needed.checked_au - 1) > FRACTION_TOLERANCE:
        misses.append(f"checked at {needed.checked_workers} workers: AU {needed.checked_au:.3f}, known 1 "
                      f"({needed.explanation})")
    _verdict(misses, least, (*PREFIXES, "no worker", "one worker", "workload", "warm"))
