"""The largest-batch prediction from one compile (no compile here)."""

from jaxpain.aot import runner

GIB = 2**30


def test_largest_batch_is_predicted_from_fixed_and_per_pair_memory():
  # 2 GiB of state and code, 0.5 GiB of temporaries per pair (8 pairs).
  mem = {"peak": 6 * GIB, "temp": 4 * GIB}
  hbm = 16 * GIB
  best = runner.predict_per_shard(mem, 8, hbm)
  assert best == int((0.97 * hbm - 2 * GIB) // (0.5 * GIB))  # 27
  assert 2 * GIB + best * 0.5 * GIB <= 0.97 * hbm
  assert runner.predict_per_shard(mem, 8, hbm, max_per_shard=16) == 16
  assert runner.batch_shards({"mesh": {"data": 1, "fsdp": 16,
                                       "tensor": 4}}) == 16
