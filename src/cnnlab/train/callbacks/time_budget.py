"""Train for as long as fits in a wall-clock budget: measure the step rate, fix the run's length, stop on time."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from cnnlab import infer
from cnnlab.runtime import use_channels_last
from cnnlab.train import distributed
from cnnlab.train.callbacks.base import ORDER_SCHEDULE, Callback

# share of the measured rate that the plan counts on: steps slow down a little as the machine warms, caches churn
SAFETY = 0.97
MAX_REPLANS = 3  # the plan is measured again a third of the way, then halfway through the rest, twice
# what the end of a run needs besides its evaluation passes: the curves (0.34 s), the model file and metrics.json
# (0.01 s) and the exit (0.01 s since `cli.entry` skips the interpreter's teardown), measured in a 30 s fast-recipe
# run on a 2-core Zen 3
POST_SECONDS = 0.6


def time_inference(trainer, probe: torch.Tensor, timer: Callable[[], float] = time.perf_counter) -> float:
    """Forward-only seconds per sample of the trainer's model at its precision on this rank, as evaluation runs it
    (BatchNorm folded where the trainer's validation folds it): the best of 3 timed passes of `probe` (a batch of
    model input), after one warm-up pass. The folded, converted copy is made once, outside the timed passes."""
    t = trainer
    net = infer.prepare(t.model, t.device, use_channels_last(t.device, t.precision), t.evaluates_folded())
    infer.run(net, [probe], t.device, t.precision, fold_bn=False)  # warm-up
    best = math.inf
    for _ in range(3):
        start = timer()
        infer.run(net, [probe], t.device, t.precision, fold_bn=False)
        best = min(best, timer() - start)
    return best / len(probe)


class TimeBudget(Callback):
    """Plan the run from its own measured speed so that it ends, test evaluation included, by `seconds`.

    clock: seconds spent so far by the whole job (e.g. since process start), so the budget covers start-up too.
    estimate_step_s: a first guess of the step time (e.g. from the thread probe): the run is laid out with it from
    the first step, so the measured plan later moves the LR schedule only a little.
    After `min_steps` optimizer steps and at least `min_seconds` spent in them (epoch ends not counted; the first
    step of each epoch neither), the step time is measured, and so is the forward-only rate (a few inference passes
    over `probe`, a batch of model input). The plan: steps that fit in what is left of the budget once the per-epoch
    validation (`val_samples`) and the final evaluation (`post_samples`, plus `post_seconds` for saving and
    plotting) are paid for, capped by the epochs the user asked for. `trainer.plan(steps)` then lays whole-run LR
    schedules out over exactly that many steps, and the run stops at that step. The step time is measured again a
    third of the way through the plan and then twice halfway through the rest (the first steps are often slower
    than the steady rate, and the machine's load changes), and the plan, with the schedule's end, moves to match.
    A hard stop at the deadline (less the final evaluation) keeps the budget even when the machine slows down.
    `plan` (a dict) says what was measured and decided; `log` gets it as one line.

    What is measured comes from two replaceable sources (today's measurements by default), so that a test can give
    every step a known duration: `step_clock` times the training steps (time.perf_counter), and
    `inference_timer(trainer, probe)` gives the forward-only seconds per sample (`time_inference`: timed passes).

    Distributed: the plan is one plan of all ranks (LR schedules must stay identical): when to plan is agreed (any
    rank ready), the slowest rank's step and inference times count (evaluation is split over the ranks), and the
    fewest steps any rank's clock allows win. The hard stop is agreed like every stop (StopAgreement).
    """

    order = ORDER_SCHEDULE - 5  # the run's length is fixed before the LR schedule sets the next step's LR

    def __init__(
        self,
        seconds: float,
        clock: Callable[[], float],
        probe: torch.Tensor,
        val_samples: int = 0,
        post_samples: int = 0,
        post_seconds: float = POST_SECONDS,
        min_steps: int = 8,
        min_seconds: float = 0.3,
        estimate_step_s: float | None = None,
        log: Callable[[str], None] | None = None,
        step_clock: Callable[[], float] = time.perf_counter,
        inference_timer: Callable[..., float] = time_inference,
    ) -> None:
        if seconds <= 0:
            raise ValueError(f"time budget must be > 0 s, got {seconds}")
        self.seconds, self.clock, self.probe = seconds, clock, probe
        self.val_samples, self.post_samples, self.post_seconds = val_samples, post_samples, post_seconds
        self.min_steps, self.min_seconds = min_steps, min_seconds
        self.estimate_step_s = estimate_step_s
        self.log = log
        self.step_clock, self.inference_timer = step_clock, inference_timer
        self.plan: dict | None = None

    def on_train_begin(self, logs: dict) -> None:
        self.plan = None
        self.cap = self.trainer.total_steps  # what --epochs allows
        self.last: float | None = None  # end of the previous batch of this epoch
        self.last_step = 0  # the trainer's step count then
        self.timed_s, self.timed_steps = 0.0, 0
        self.replans, self.replan_at, self.per_sample = 0, 0, 0.0
        self.post = self.post_seconds  # until measured: what the end needs besides the test pass
        if self.estimate_step_s:  # provisional: inference ≈ a third of a training step per sample
            per_sample = self.estimate_step_s / len(self.probe) / 3
            total, _ = self._fit(self.estimate_step_s, per_sample)
            self.trainer.plan(_agreed_min(min(total, self.cap)))

    def left(self) -> float:
        """Seconds of the budget still unspent (the final evaluation's share included)."""
        return self.seconds - self.clock()

    def on_epoch_begin(self, epoch: int, logs: dict) -> None:
        self.last = None  # the epoch's first step pays for the epoch's start: not timed

    def _inference_seconds_per_sample(self) -> float:
        """Forward-only time per sample of the training model at its precision, for the whole job."""
        per_sample = self.inference_timer(self.trainer, self.probe)
        return per_sample / distributed.world_size()  # each rank evaluates its share

    def _fit(self, step_s: float, per_sample: float) -> tuple[int, float]:
        """(steps of the whole run that fit in the budget, seconds kept for the end) at these rates."""
        t = self.trainer
        epoch_s = self.val_samples * per_sample + 0.05  # validation + the epoch-end checkpoint and CSV row
        post = self.post_samples * per_sample + self.post_seconds
        left = self.seconds - self.clock() - post

        def cost(n: int) -> float:  # n more steps and the epoch ends they cross; grows with n
            ends = (t.step + n) // t.updates_per_epoch - t.step // t.updates_per_epoch
            return n * step_s + ends * epoch_s

        lo, hi = 0, max(int(left / step_s), 0)  # the most steps that fit in `left`: in [lo, hi]
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if cost(mid) <= left else (lo, mid - 1)
        return t.step + lo, post

    def _make_plan(self) -> None:
        t = self.trainer
        replan = self.plan is not None
        measured = self.timed_s / max(self.timed_steps, 1) / SAFETY
        if replan:  # the steady rate since the last plan; inference was measured then
            step_s, per_sample = distributed.all_max([measured])[0], self.per_sample
        else:
            step_s, per_sample = distributed.all_max([measured, self._inference_seconds_per_sample()])
        self.per_sample = per_sample
        self.timed_s, self.timed_steps = 0.0, 0
        fit, self.post = self._fit(step_s, per_sample)
        fit = _agreed_min(fit)
        total = min(fit, self.cap)
        # measure again over the next part of the run (the first steps are often slower than the steady rate):
        # a third of the way, then halfway through what is left
        self.replan_at = t.step + max((total - t.step) // (2 if replan else 3), self.min_steps)
        decided = {
            "steps": total,
            "epochs": round(total / t.updates_per_epoch, 3),
            "step_ms": round(step_s * 1e3, 3),
            # the probe is one training batch; with accumulation a step is several batches
            "samples_per_s": round(len(self.probe) * t.steps_per_epoch / t.updates_per_epoch / step_s, 1),
            "ended_by": "budget" if fit <= self.cap else "epochs",
            "planned_at": t.step,
        }
        if replan:
            self.replans += 1
            if self.log and total != self.plan["steps"]:
                self.log(
                    f"time budget {self.seconds:g} s: {total:,} steps at {step_s * 1e3:.1f} ms/step measured "
                    f"since step {self.plan['planned_at']:,} (was {self.plan['steps']:,})"
                )
            self.plan.update(decided, replans=self.replans)
        else:
            self.plan = {
                "budget_s": self.seconds,
                **decided,
                "inference_samples_per_s": round(1 / per_sample, 1),
                "reserved_s": round(self.post, 2),
                "replans": 0,
            }
            if self.log:
                first = "the budget ends first" if fit <= self.cap else f"--epochs ends first ({self.cap} steps)"
                self.log(
                    f"time budget {self.seconds:g} s: {total:,} steps ({self.plan['epochs']:g} epochs) at "
                    f"{step_s * 1e3:.1f} ms/step measured, {self.post:.1f} s kept for the final evaluation; "
                    f"{first}"
                )
        t.plan(total)

    def on_batch_end(self, batch: int, logs: dict) -> None:
        t = self.trainer
        now = self.step_clock()
        if self.last is not None:  # time steps within an epoch only (epoch ends are planned for separately)
            self.timed_s += now - self.last
            self.timed_steps += t.step - self.last_step  # optimizer steps: several batches each with accumulation
        self.last, self.last_step = now, t.step
        if self.plan is None:
            ready = self.timed_steps >= self.min_steps and self.timed_s >= self.min_seconds
            if distributed.all_max([float(ready)])[0] > 0:  # one rank ready: all plan at this step
                self._make_plan()
        elif self.replans < MAX_REPLANS and t.step >= self.replan_at and self.timed_steps >= self.min_steps:
            self._make_plan()  # the same step on every rank: replan_at and the step count are the same everywhere
        if self.plan is not None and t.step >= self.plan["steps"]:
            t.stop(f"time budget: the {self.plan['steps']:,} planned steps are done")
        elif self.clock() >= self.seconds - self.post:
            t.stop(
                f"time budget of {self.seconds:g} s: stopped at step {t.step:,} to leave {self.post:.1f} s "
                "for the final evaluation"
            )

    def on_train_end(self, logs: dict) -> None:
        t = self.trainer
        if self.plan is None:  # the run ended before it could be measured: say what ended it
            by_epochs = t.stop_reason is None and not t.interrupted
            self.plan = {
                "budget_s": self.seconds,
                "steps": t.step,
                "epochs": round(t.step / t.updates_per_epoch, 3),
                "ended_by": "epochs" if by_epochs else "budget",
            }
            if self.log and by_epochs:
                self.log(f"time budget {self.seconds:g} s: --epochs ends first ({t.step:,} steps)")
            elif self.log and t.stop_reason and t.stop_reason.startswith("time budget"):
                self.log(
                    f"time budget {self.seconds:g} s: used up after {t.step:,} step(s), before the training "
                    "rate could be measured (start-up and the first steps took it all); give a larger budget"
                )

    def state_dict(self) -> dict:
        return {}


def _agreed_min(steps: int) -> int:
    """The fewest steps of all ranks (`steps` itself in one process)."""
    return int(-distributed.all_max([-float(steps)])[0])
