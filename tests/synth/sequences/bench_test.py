"""The sequence benchmark's counts (no timing is asserted)."""

from synth.sequences import aus, bench


def test_bench_simulation_counts_frames_and_windows():
  out = bench.bench_simulation(subjects=2, minutes=1.0)
  assert out["frames"] == 2 * 60 * aus.FPS
  assert out["windows64"] == 2 * ((60 * aus.FPS - 64) // 10 + 1)
  assert out["windows64_per_cpu_s"] > 0 and out["frames_per_cpu_s"] > 0
