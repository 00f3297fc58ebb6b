"""The released PainDiffusion import: format, strictness, parity, rollout.

A small PyTorch PainDiffusion (`torch_paindiffusion`, our code, released
key names) with random weights, norm gains included, is saved the way the
authors save theirs (`torch.save({'state_dict', 'config'},
'model.safetensors')`), read back by `load_released`, and its denoiser
D(x; sigma) compared with the PyTorch one in float32.
"""

from __future__ import annotations

import json
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpain.temporal import cli
from jaxpain.temporal.released import load_released, stream, unet, weights
from jaxpain.temporal.torch_checkpoint import CheckpointError

torch = pytest.importorskip("torch")

from tests.jaxpain.temporal import torch_paindiffusion as tp  # noqa: E402

KEYS_FILE = os.path.join(os.path.dirname(__file__),
                         "released_keys_tiny.txt")
B, W, FS, L = 2, 4, 4, 128
PARITY_TOL = 1e-4


def tiny_config() -> dict:
  """A released-format config (YAML sections) at a tiny size."""
  return {
      "MODEL": {"type": "video", "dim": 8, "dim_mults": [1, 2],
                "channels": FS, "context_channels": 3 * FS,
                "context_dim": 16, "attn_heads": 2, "attn_dim_head": 8,
                "sinusoidal_pos_emb_theta": 10000, "dropout": 0,
                "self_condition": False, "learned_variance": False},
      "DIFFUSION": {"frame_stack": FS, "window_size": W, "context_size": 2,
                    "guide": [0.25, 0.5, 1.0]},
      "DATA_STATS": {"emotion": {"mean": 4.6183, "std": 1.3559},
                     "expressiveness": {"mean": 8.33, "std": 0.674},
                     "stimulus_abs": {"mean": 37.2281, "std": 7.0676}},
  }


def load(path):
  """Through the released-file reader (no torch, no code from the file)."""
  model, info = load_released(path)
  assert info["params"] == weights.num_params(model)
  return model


@pytest.fixture(scope="module")
def released(tmp_path_factory):
  """(torch module, path of its released-format file, loaded model)."""
  torch.manual_seed(0)
  module = tp.PainDiffusion(tiny_config()).eval()
  tp.randomise(module, seed=1)
  path = tmp_path_factory.mktemp("released") / "model.safetensors"
  torch.save({"state_dict": module.state_dict(), "config": tiny_config()},
             path)
  return module, path, load(path)


def released_keys() -> dict[str, tuple[int, ...]]:
  out = {}
  with open(KEYS_FILE) as f:
    for line in f:
      if line.strip() and not line.startswith("#"):
        key, *shape = line.split()
        out[key] = tuple(int(s) for s in shape)
  return out


def test_key_names_are_the_released_ones(released):
  module, _, model = released
  want = released_keys()
  assert len(want) == 276
  ours = {k: tuple(v.shape) for k, v in module.state_dict().items()}
  assert ours == want
  assert weights.expected_keys(model) == want


def test_full_size_parameter_count():
  """reference.md §G.3: U-Net 5,330,308 + condition MLPs 99,840, of which
  the loader reads and ignores the unused context_mlp and the temporal
  blocks' context projections."""
  model = weights.abstract(unet.ReleasedConfig())
  ignored = weights.ignored_keys(model)
  assert weights.num_params(model) + sum(
      int(np.prod(s)) for s in ignored.values()) == 5_330_308 + 99_840
  assert len([k for k in ignored if "context_mlp" in k]) == 6


def _inputs(seed=0):
  g = np.random.default_rng(seed)
  drops = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], bool)
  n = B * len(drops)
  x = g.normal(size=(n, W, FS, L)).astype(np.float32)
  sigma = np.exp(1.5 * g.normal(size=(n, W))).astype(np.float32)
  frames = W * FS
  emotion = (8 * g.random((n, frames))).astype(np.float32)
  expr = (8.33 + g.normal(size=(n, frames))).astype(np.float32)
  stim = (32 + 18 * g.random((n, frames))).astype(np.float32)
  return x, sigma, emotion, expr, stim, np.repeat(drops, B, axis=0)


def test_denoiser_matches_pytorch(released):
  """D(x; sigma), per-token sigma, all conditions and each one dropped."""
  module, _, model = released
  x, sigma, emotion, expr, stim, drop = _inputs()
  with torch.no_grad():
    want = module(*(torch.from_numpy(a) for a in
                    (x, sigma, emotion, expr, stim, drop))).numpy()
  got = jax.jit(lambda m, *a: m(*a))(
      model, jnp.asarray(x.reshape(len(x), W, -1)), sigma, stim, expr,
      emotion, drop)
  got = np.asarray(got).reshape(want.shape)
  err = np.abs(got - want).max()
  print(f"parity: max |JAX - PyTorch| = {err:.2e} "
        f"(max |D| = {np.abs(want).max():.1f})")
  assert err < PARITY_TOL
  # Dropping a signal changes the output (the conditions are wired in).
  for i in range(1, 4):
    assert np.abs(got[i * B:(i + 1) * B] - got[:B]).max() > 1e-3


def _state_dict(module):
  return {k: v.numpy() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("change, names", [
    ("missing", "model.downs.1.2.attn.to_k.weight"),
    ("unexpected", "model.mid_block2.extra.weight"),
    ("mis-shaped", "ctrl_emb.stimulus_abs.3.bias"),
])
def test_state_dict_is_checked_strictly(released, change, names):
  module = released[0]
  sd = _state_dict(module)
  if change == "missing":
    del sd[names]
  elif change == "unexpected":
    sd[names] = np.zeros((2, 2), np.float32)
  else:
    sd[names] = np.zeros((3,), np.float32)
  cfg = unet.ReleasedConfig.from_released(tiny_config())
  with pytest.raises(weights.WeightsError, match=f"1 {change}: {names}"):
    weights.from_state_dict(cfg, sd)


def test_ignored_keys_are_still_required(released):
  sd = _state_dict(released[0])
  del sd["model.context_mlp.3.bias"]
  cfg = unet.ReleasedConfig.from_released(tiny_config())
  with pytest.raises(weights.WeightsError, match="context_mlp.3.bias"):
    weights.from_state_dict(cfg, sd)


def _save(tmp_path, state_dict, conf):
  path = tmp_path / "model.safetensors"
  torch.save({"state_dict": state_dict, "config": conf}, path)
  return path


def test_load_released_names_the_file_and_the_key(released, tmp_path):
  sd = released[0].state_dict()
  del sd["model.final_conv.bias"]
  path = _save(tmp_path, sd, tiny_config())
  with pytest.raises(CheckpointError,
                     match=re.escape(str(path)) + ": .*1 missing: model.final_conv.bias"):
    load_released(path)
  conf = tiny_config()
  conf["MODEL"]["learned_variance"] = True
  path = _save(tmp_path, released[0].state_dict(), conf)
  with pytest.raises(CheckpointError, match="MODEL.learned_variance"):
    load_released(path)


@pytest.mark.parametrize("section, key, value, match", [
    ("MODEL", "self_condition", True, "self_condition"),
    ("MODEL", "type", "frame", "MODEL.type"),
    ("MODEL", "context_channels", 8, "context_channels"),
    ("DIFFUSION", "frame_stack", 2, "frame_stack"),
])
def test_unsupported_config_is_refused(section, key, value, match):
  conf = tiny_config()
  conf[section][key] = value
  with pytest.raises(ValueError, match=match):
    unet.ReleasedConfig.from_released(conf)


def test_missing_config_section_is_named():
  conf = tiny_config()
  del conf["DATA_STATS"]
  with pytest.raises(ValueError, match="DATA_STATS"):
    unet.ReleasedConfig.from_released(conf)


def test_flame_vector_round_trip():
  g = np.random.default_rng(0)
  flame = g.normal(size=(2, 5, 103)).astype(np.float32) * 0.1
  x = np.asarray(stream.to_model(flame))
  assert x.shape == (2, 5, 128)
  np.testing.assert_array_equal(x[..., 103:], -1.0)  # the padding
  np.testing.assert_allclose(x[..., :3], 2 * 100 * flame[..., :3] - 1,
                             rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(stream.from_model(x), flame, atol=1e-6)
  with pytest.raises(ValueError, match="103"):
    stream.to_model(flame[..., :100])


def test_rollout_streams_the_released_model(released):
  """Our sampler runs the released network: given context is kept
  exactly, later frames follow the stimulus, a seed reproduces (the first
  window without context: test_cli_released)."""
  model = released[2]
  scfg = stream.sampler_config(model, num_levels=3)
  assert (scfg.context, scfg.uncertainty, scfg.guidance) == (
      2, 4.0, (0.25, 0.5, 1.0))
  g = np.random.default_rng(0)
  t = 30  # a window of 16 frames, then 2 chunks of 8 (the last cut to 6)
  stim = 32 + 10 * g.random((B, t))
  ctx = (0.01 * g.normal(size=(B, 2 * FS, 103))).astype(np.float32)
  run = lambda s: stream.rollout(model, scfg, s, [8.0, 9.0],  # noqa: E731
                                 [4.0, 5.0], seed=0, context_frames=ctx)
  out = run(stim)
  assert out.shape == (B, t, 103) and np.isfinite(out).all()
  np.testing.assert_allclose(out[:, :2 * FS], ctx, atol=1e-6)
  np.testing.assert_array_equal(run(stim), out)
  hotter = run(stim + 5.0)
  np.testing.assert_allclose(hotter[:, :2 * FS], ctx, atol=1e-6)
  assert np.abs(hotter[:, 2 * FS:] - out[:, 2 * FS:]).max() > 1e-4


def test_cli_released(released, tmp_path, capsys):
  """`python -m jaxpain.temporal released`: one first window of FLAME."""
  out = tmp_path / "flame.npz"
  assert cli.main(["released", "--weights", str(released[1]),
                   "--programme", "step", "--duration", "0.64",
                   "--streams", "2", "--out", str(out)]) == 0
  info = json.loads(capsys.readouterr().out)
  assert info["frames"] == W * FS and info["ignored_keys"] == 26
  with np.load(out) as z:
    assert z["jaw"].shape == (2, W * FS, 3)
    assert z["expression"].shape == (2, W * FS, 100)
    assert np.isfinite(z["expression"]).all() and z["fps"] == 25
    assert z["stimulus_c"].min() >= 32.0


@pytest.mark.parametrize("argv, words", [
    (["--weights", "NOFILE", "--programme", "step"], "none: cannot be read"),
    (["--weights", "W", "--programme", "joint"], "in °C"),
    (["--weights", "W", "--programme", "step", "--out", "x.csv"], ".npz"),
])
def test_cli_released_bad_input(argv, words, released, tmp_path, capsys):
  subs = {"W": str(released[1]), "NOFILE": str(tmp_path / "none")}
  argv = [subs.get(a, a) for a in argv]
  if "--out" not in argv:
    argv += ["--out", str(tmp_path / "f.npz")]
  assert cli.main(["released", *argv]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and words in err[0], err
  assert not os.listdir(tmp_path)
