"""The pipeline: records, determinism across workers, resume, read-back."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from synth import pipeline, records, store
from synth.config import ConfigError, SynthConfig
from synth.identity import sample_identity

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def small(n=1, **kw):
  return SynthConfig(num_identities=n, resolution=32, texture_size=128, **kw)


@pytest.fixture(scope="module")
def recs():
  return pipeline.generate_identity(small(), 0)


def test_one_identity_has_every_expression_and_view(recs):
  n = (1 + records.NUM_PAIN_EXPRESSIONS) * 3
  assert len(recs) == n and len({r.key for r in recs}) == n
  demo = sample_identity(0, 0).demographics
  for r in recs:
    assert r.image.shape == (32, 32, 3) and r.image.dtype == np.uint8
    assert r.heatmap.shape == (32, 32, 1)
    assert r.pspi == records.pspi(r.au) and r.demographics == demo
    assert (r.yaw_deg, r.pitch_deg) == SynthConfig.views[r.view]
    assert r.key == records.identity_key(0, r.expression, r.view)
    neutral = recs[r.view]
    np.testing.assert_array_equal(r.neutral_image, neutral.image)
    if r.is_neutral:
      assert r.pspi == 0 and not r.heatmap.any()
    else:
      assert r.pspi >= 1 and r.heatmap.max() > 20
      assert not np.array_equal(r.image, neutral.image)


def test_au_override_is_applied_and_labelled():
  aus = pipeline.pain_aus(small(au_override="AU43=1,AU4=0"), 3)
  assert np.all(aus[0] == 0)
  assert np.all(aus[1:, records.AU_NAMES.index("AU43")] == 1)
  assert np.all(aus[1:, records.AU_NAMES.index("AU4")] == 0)
  free = pipeline.pain_aus(small(), 3)
  np.testing.assert_array_equal(free[1:, 1:5], aus[1:, 1:5])


def _files(out):
  root = os.path.join(out, "identities")
  return {
    os.path.join(d, f): open(os.path.join(root, d, f), "rb").read()
    for d in sorted(os.listdir(root))
    for f in sorted(os.listdir(os.path.join(root, d)))
  }


def test_bytes_do_not_depend_on_the_number_of_workers(tmp_path, recs):
  cfg = small(2)
  a, b = str(tmp_path / "a"), str(tmp_path / "b")
  store.write_dataset(cfg, a, workers=1, progress=False)
  store.write_dataset(cfg, b, workers=2, progress=False)
  fa, fb = _files(a), _files(b)
  assert len(fa) == 2 * (33 + 10 + 1)
  assert fa == fb
  # Read-back gives the in-memory records (PNG is lossless).
  back = store.read_identity(a, 0)
  for r, s in zip(recs, back, strict=True):
    assert (
      r.key == s.key and r.pspi == s.pspi and r.demographics == s.demographics
    )
    np.testing.assert_array_equal(r.image, s.image)
    np.testing.assert_array_equal(r.heatmap, s.heatmap)
    np.testing.assert_array_equal(r.au, s.au)
  assert len(list(store.iter_records(a))) == 66


# The CLI in a fresh process that SIGKILLs itself in the middle of writing
# identity 1 (some files written, not yet renamed into place): the crash is
# at the same point on every machine, however fast or loaded.
KILLED_MID_WRITE = """
import os, signal, sys
from synth import cli, store

write_files = store._write_files

def write_then_die(config, folder, recs):
  if os.path.basename(folder).startswith(".tmp-id00001-"):
    write_files(config, folder, recs[:5])
    os.kill(os.getpid(), signal.SIGKILL)
  write_files(config, folder, recs)

store._write_files = write_then_die
sys.exit(cli.run(sys.argv[1:]))
"""


def test_resume_after_kill_keeps_finished_identities(tmp_path):
  out = str(tmp_path / "ds")
  env = dict(os.environ, PYTHONPATH=ROOT)
  cmd = [
    sys.executable,
    "-c",
    KILLED_MID_WRITE,
    "--num-identities",
    "6",
    "--out",
    out,
    "--resolution",
    "32",
    "--texture-size",
    "128",
    "--workers",
    "1",
    "--no-progress",
  ]
  proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True)
  assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-3000:]
  partial = [
    n for n in os.listdir(os.path.join(out, "identities"))
    if n.startswith(".tmp-id00001-")
  ]
  assert len(partial) == 1  # the write that was cut short
  done = store.finished_identities(out)
  assert done == {0}
  stamps = {
    i: os.stat(
      os.path.join(out, "identities", store.identity_dirname(i), "labels.json")
    ).st_mtime_ns
    for i in done
  }
  cfg = small(6)
  summary = store.write_dataset(cfg, out, workers=1, progress=False)
  assert sorted(summary.skipped) == sorted(done)
  assert sorted(summary.written + summary.skipped) == list(range(6))
  assert store.finished_identities(out) == set(range(6))
  for i, t in stamps.items():  # not regenerated
    path = os.path.join(
      out, "identities", store.identity_dirname(i), "labels.json"
    )
    assert os.stat(path).st_mtime_ns == t
  leftovers = [
    n
    for n in os.listdir(os.path.join(out, "identities"))
    if not n.startswith("id")
  ]
  assert leftovers == []
  for i in range(6):
    folder = os.path.join(out, "identities", store.identity_dirname(i))
    assert len(os.listdir(folder)) == 33 + 10 + 1


def test_stale_temp_dirs_are_removed_and_config_must_match(tmp_path):
  out = str(tmp_path / "ds")
  store.write_dataset(small(1), out, workers=1, progress=False)
  stale = os.path.join(out, "identities", ".tmp-id00001-dead")
  os.makedirs(stale)
  open(os.path.join(stale, "expr00_view0.png"), "wb").close()
  summary = store.write_dataset(small(2), out, workers=1, progress=False)
  assert summary.written == [1] and summary.skipped == [0]
  assert not os.path.exists(stale)
  with open(os.path.join(out, store.CONFIG_FILE)) as f:
    assert json.load(f)["config"]["num_identities"] == 2
  # Finished entries get ordinary permissions, not tempfile's private ones.
  mode = lambda p: os.stat(p).st_mode & 0o777
  assert mode(os.path.join(out, "identities", "id00001")) == store.DIR_MODE
  assert mode(os.path.join(out, store.CONFIG_FILE)) == store.FILE_MODE
  with pytest.raises(store.OutputDirError, match="resolution"):
    store.write_dataset(
      SynthConfig(num_identities=2, resolution=48, texture_size=128),
      out,
      progress=False,
    )
  assert store.finished_identities(out) == {0, 1}


@pytest.mark.parametrize(
  "kwargs, match",
  [
    (dict(num_identities=0), "num_identities"),
    (dict(num_identities=1, resolution=8), "resolution"),
    (dict(num_identities=1, views=((100, 0),)), "yaw"),
    (dict(num_identities=1, texture="paint"), "texture"),
    (dict(num_identities=1, au_override="AU5=1"), "unknown AU"),
    (dict(num_identities=1, au_override="AU43=2"), "out of range"),
    (dict(num_identities=1, key_intensity=(3, 1)), "key_intensity"),
    (dict(num_identities=1, texture="diffusers"), "diffusion_weights"),
    (dict(num_identities=1, head="flame"), "head_path"),
  ],
)
def test_config_rejects_bad_values(kwargs, match):
  with pytest.raises(ConfigError, match=match):
    SynthConfig(**kwargs)


def test_config_round_trips_through_json(tmp_path):
  cfg = small(3, au_override={"AU4": 2}, views=((0, 0), (10, 5)))
  path = tmp_path / "c.json"
  path.write_text(json.dumps(cfg.to_dict()))
  assert SynthConfig.from_json(path) == cfg
  with pytest.raises(ConfigError, match="unknown config keys"):
    SynthConfig.from_dict({"num_identities": 1, "colour": "red"})


def _fake_flame(tmp_path):
  """A FLAME-format npz (head ellipsoid + two eyeballs) and blendshapes."""
  import trimesh

  from synth import rig

  head = trimesh.creation.icosphere(3)
  hv = head.vertices * [0.08, 0.11, 0.1]
  parts_v, parts_f = [hv], [head.faces]
  for x in (0.03, -0.03):
    eye = trimesh.creation.icosphere(1, radius=0.012)
    parts_f.append(eye.faces + sum(len(p) for p in parts_v))
    parts_v.append(eye.vertices + [x, 0.02, 0.085])
  v, f = np.concatenate(parts_v), np.concatenate(parts_f)
  rng = np.random.default_rng(0)
  model = tmp_path / "flame.npz"
  np.savez(
    model, v_template=v, f=f, shapedirs=rng.normal(0, 0.002, (len(v), 3, 8))
  )
  front = np.nonzero((v[:, 2] > 0.07) & (np.abs(v[:, 1]) < 0.06))[0]
  names = {s for au in rig.PAIN_AUS for s in rig.AU_BLENDSHAPES[au]}
  shapes = {}
  for k, name in enumerate(sorted(names)):
    d = np.zeros_like(v, dtype=np.float32)
    d[front[k :: len(names)]] = [0, 0, 0.004]
    shapes[name] = d
  blend = tmp_path / "arkit.npz"
  np.savez(blend, **shapes)
  return str(model), str(blend)


def test_flame_head_runs_through_the_pipeline(tmp_path):
  model, blend = _fake_flame(tmp_path)
  cfg = small(head="flame", head_path=model, head_blendshapes=blend)
  pipeline.check_inputs(cfg)
  recs = pipeline.generate_identity(cfg, 0)
  assert len(recs) == 33
  frontal = recs[0].image.astype(int)
  corner = frontal[:3, :3].reshape(-1, 3).mean(0)
  face = np.abs(frontal - corner).sum(-1) > 40
  rows, cols = np.nonzero(face)
  assert face.mean() > 0.2 and abs(cols.mean() - 16) < 4
  assert all(r.heatmap.any() for r in recs if r.expression)
  with pytest.raises(ConfigError, match="does not exist"):
    pipeline.check_inputs(
      small(
        head="flame", head_path=model, head_blendshapes=str(tmp_path / "no.npz")
      )
    )
