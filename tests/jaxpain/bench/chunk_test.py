"""The benchmarks' chunk functions (ours and the released network's) at a
tiny size on the CPU: shapes, the carried context, bad variants (no
timing is asserted: speed is measured by scripts/bench_temporal.py)."""

import jax
import numpy as np
import pytest

from jaxpain.bench import chunk, temporal
from jaxpain.temporal import schedule
from jaxpain.temporal.released import stream


def test_the_released_variant_is_the_real_time_model():
  cfg = chunk.RELEASED["released"]
  assert (cfg.window, cfg.context_size, cfg.frame_stack) == (8, 2, 4)
  assert (cfg.dim, cfg.dim_mults, cfg.latent_width) == (32, (1, 2, 4, 8), 128)


def test_released_chunk_returns_the_window_and_carries_its_context():
  net, scfg = chunk.build("released-tiny")
  ch = chunk.of(net, scfg, "released-tiny")
  assert scfg == stream.sampler_config(net) and ch.branches == 4
  w, c, feat = ch.window, ch.context, net.cfg.token_features
  assert ch.new_frames == (w - c) * net.cfg.frame_stack == 24
  # one network evaluation per row of the pyramid the scan runs
  assert ch.evaluations == len(schedule.pyramid(
      scfg.num_levels, w, c, scfg.uncertainty)) - 1
  args = chunk.inputs(ch, 3)
  out = ch(args, jax.random.key(0, impl="rbg"))
  assert out.shape == (3, w, feat) and np.isfinite(out).all()
  nxt = ch.advance(out, args)
  np.testing.assert_array_equal(nxt[0], out[:, w - c:])
  assert [a.shape for a in nxt[1:]] == [(3, w * 4), (3,), (3,)]
  # the context given is kept exactly in the output window
  np.testing.assert_array_equal(out[:, :c], args[0])


def test_our_chunk_carries_its_state():
  ch = chunk.of(*chunk.build("tiny"), "tiny")
  args = chunk.inputs(ch, 2)
  carry, frames = ch(args, jax.random.key(0, impl="rbg"))
  assert frames.shape == (2, ch.new_frames, 13)
  nxt = ch.advance((carry, frames), args)
  assert jax.tree.map(np.shape, nxt[0]) == jax.tree.map(np.shape, args[0])


def test_unknown_variant_or_dtype_is_refused():
  with pytest.raises(ValueError, match="unknown variant 'huge'.*released"):
    chunk.build("huge")
  with pytest.raises(ValueError, match="float32 only"):
    chunk.build("released", "bfloat16")


def test_cli_unknown_variant_is_one_line_and_status_2(tmp_path, capsys):
  with pytest.raises(SystemExit) as e:
    temporal.main(["--variant", "huge", "--out", str(tmp_path / "out")])
  assert e.value.code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "huge" in err[0], err
  assert not (tmp_path / "out").exists()
