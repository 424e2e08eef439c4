"""The busy-machine thread benchmark's per-run check (benchmarks/features/busy_threads.py), on made-up rates."""

from benchmarks.features.busy_threads import verdict


def test_busy_machine_passes_within_ten_percent_of_the_better_fixed_count():
    fixed = {"1": 7000.0, "2": 4000.0}
    assert verdict(True, fixed, measured=6400.0, used=1)  # 91 % of the better (1 thread)
    assert not verdict(True, fixed, measured=6200.0, used=2)  # 89 %
    assert verdict(True, {"1": 4000.0, "2": 7000.0}, measured=6900.0, used=2)


def test_idle_machine_fails_only_when_it_picks_fewer_threads_than_the_faster_count():
    assert verdict(False, {"1": 9000.0, "2": 14000.0}, measured=13000.0, used=2)
    assert not verdict(False, {"1": 9000.0, "2": 14000.0}, measured=9000.0, used=1)
    assert verdict(False, {"1": 14000.0, "2": 9000.0}, measured=14000.0, used=1)  # 1 was faster: 1 is fine
