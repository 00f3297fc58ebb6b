"""The temporal sampler's chunk compiled for a TPU topology (v5e 2x2) on
the CPU, ours and the released network's: what the streams-per-chip
figures of docs/benchmarks.md rest on.
Needs libtpu, which scripts/setup_env.sh installs into <venv>/libtpu."""

import pytest

from jaxpain.aot import analysis, chips, hlo

pytestmark = pytest.mark.skipif(
    chips.libtpu_path() is None,
    reason="libtpu not installed: scripts/setup_env.sh installs it")


@pytest.fixture(scope="module")
def res():
  from jaxpain.bench import temporal_tpu

  return temporal_tpu.run("v5e-4", [2, 4], variant="tiny")


def test_scan_is_counted_per_row_and_work_scales_with_streams(res):
  two, four = res["rows"]
  assert res["chips"] == 4 and two["fits"] and four["fits"]
  assert four["flops"] == pytest.approx(2 * two["flops"], rel=0.05)
  # Every denoiser evaluation of the pyramid counted (27 rows, 4 guidance
  # branches, 16 tokens): at least 2 FLOPs per parameter and token, and
  # not much more (attention and the frame conv add a fraction).
  per_token = two["flops"] / (two["streams_per_chip"]
                              * res["evaluations_per_chunk"]
                              * res["guidance_branches"] * 16)
  assert 2 * res["parameters"] <= per_token <= 5 * res["parameters"]


def test_streams_follow_from_the_roofline(res):
  for r in res["rows"]:
    assert r["t_chunk_s"] == max(r["t_flops_s"], r["t_bytes_s"]) > 0
    assert r["realtime_streams_per_chip"] == pytest.approx(
        r["streams_per_chip"] * res["chunk_seconds"] / r["t_chunk_s"])
  assert res["chunk_seconds"] == pytest.approx(48 / 25)


def test_streams_are_independent_no_collective():
  from jaxpain.bench import temporal_tpu

  devices = chips.devices(chips.get("v5e-4"))
  compiled, _ = temporal_tpu.compile_chunk(
      temporal_tpu.build("tiny", "bfloat16"), devices, 8)
  module = hlo.parse(compiled.as_text())
  assert analysis.collective_records(module, devices) == []


@pytest.fixture(scope="module")
def released():
  from jaxpain.bench import temporal_tpu

  return temporal_tpu.run("v5e-4", [2, 4], variant="released-tiny")


def _forward_flops_per_chip(devices, rows_per_chip: int) -> float:
  """FLOPs per chip of ONE denoiser evaluation of the released-tiny
  network (all guidance rows), compiled alone for the same chips."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  from flax import nnx
  from jax.sharding import Mesh, NamedSharding
  from jax.sharding import PartitionSpec as P

  from jaxpain.bench import temporal_tpu

  ch = temporal_tpu.build("released-tiny")
  net = nnx.merge(ch.graphdef, ch.state)
  mesh = Mesh(np.asarray(devices), ("data",))
  rep, rows = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
  b, w, fs = rows_per_chip * len(devices), ch.window, 4
  cond = jax.eval_shape(lambda: net.condition(
      jnp.zeros((b, w * fs)), jnp.zeros((b,)), jnp.zeros((b,)),
      jnp.zeros((b, 3), bool)))
  at = lambda t, sh: jax.tree.map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sh), t)
  f32 = jnp.float32
  fwd = jax.jit(lambda g, s, x, sig, c: nnx.merge(g, s).denoise(x, sig, c))
  compiled = fwd.lower(
      ch.graphdef, at(ch.state, rep),
      at(jax.ShapeDtypeStruct((b, w, net.cfg.token_features), f32), rows),
      at(jax.ShapeDtypeStruct((b, w), f32), rows), at(cond, rows)).compile()
  return analysis.cost(compiled)["flops"]


def test_released_chunk_counts_every_row_and_scales_with_streams(released):
  two, four = released["rows"]
  assert released["chips"] == 4 and two["fits"] and four["fits"]
  assert released["dtype"] == "float32" and released["window"] == 8
  assert four["flops"] == pytest.approx(2 * two["flops"], rel=0.05)
  # The 55 scan rows each cost about one evaluation of the network for all
  # guidance branches: not counted once (1/55), not more than all of them
  # (XLA's count of one evaluation includes elementwise work; the rows
  # beyond the first add matmul and convolution FLOPs only,
  # `analysis.loop_extra`: somewhat less than all).
  devices = chips.devices(chips.get("v5e-4"))
  one = _forward_flops_per_chip(devices, 2 * released["guidance_branches"])
  rows = released["evaluations_per_chunk"] * one
  assert 0.5 * rows <= two["flops"] <= 1.1 * rows
  assert released["chunk_seconds"] == pytest.approx(24 / 25)


def test_released_streams_are_independent_no_collective():
  from jaxpain.bench import temporal_tpu

  devices = chips.devices(chips.get("v5e-4"))
  compiled, _ = temporal_tpu.compile_chunk(
      temporal_tpu.build("released-tiny"), devices, 4)
  module = hlo.parse(compiled.as_text())
  assert analysis.collective_records(module, devices) == []


def test_a_chunk_beyond_hbm_is_a_row_that_does_not_fit():
  from jaxpain.bench import temporal_tpu

  res = temporal_tpu.run("v5e-4", [2**22], variant="released-tiny")
  (row,) = res["rows"]
  assert not row["fits"] and "HBM" in row["error"]
  assert "does not fit" in temporal_tpu.table(res)


@pytest.mark.parametrize("argv, words", [
    (["--topology", "v9x-4"], "unknown topology"),
    (["--streams", "0,8"], "positive"),
    (["--streams", "eight"], "invalid literal"),
    (["--variant", "huge", "--streams", "2"], "huge"),
    (["--variant", "released-tiny", "--dtype", "bfloat16", "--streams", "2"],
     "float32 only"),
])
def test_bad_input_is_one_line_and_status_2(argv, words, tmp_path, capsys):
  from jaxpain.bench import temporal_tpu

  with pytest.raises(SystemExit) as e:
    temporal_tpu.main(argv + ["--out", str(tmp_path / "out")])
  assert e.value.code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and words in err[0], err
  assert not (tmp_path / "out").exists()
