"""train_and_evaluate end to end: distillation, preemption, outputs, errors."""

import json
import os
import shutil
import signal

import numpy as np
import pytest

from jaxpain import sharding as shd
from jaxpain.data import pipeline, sources, toy
from jaxpain.train import checkpoint as ckpt_lib
from jaxpain.train import predict, state, train_and_evaluate
from jaxpain.train.trainer import NonFiniteLossError
from tests.jaxpain.train.tiny_model import tiny_config


def _short(c, steps=4, every=2):
  c.num_train_steps = steps
  c.log_every = 1
  c.eval_every = every
  c.checkpoint_every = every
  return c


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("teacher"))
  result = train_and_evaluate(_short(tiny_config("teacher")), workdir)
  assert result["status"] == "done" and result["step"] == 4
  return workdir


@pytest.fixture(scope="module")
def student(teacher_dir, tmp_path_factory):
  """A distilled student, preempted by SIGTERM at step 3, then resumed."""
  workdir = str(tmp_path_factory.mktemp("student"))
  config = _short(tiny_config("student"), steps=6, every=3)
  config.teacher.workdir = teacher_dir

  def sigterm_at_2(step, **_):
    if step == 2:
      os.kill(os.getpid(), signal.SIGTERM)

  first = train_and_evaluate(config, workdir, hooks=[sigterm_at_2])
  second = train_and_evaluate(config, workdir)
  return workdir, config, first, second


def test_sigterm_saves_and_the_next_run_resumes(student):
  _, _, first, second = student
  assert first["status"] == "preempted" and first["step"] == 2
  assert second["status"] == "done" and second["step"] == 6
  assert second["origin"] == "resumed from step 2"


def test_distilled_student_writes_metrics_curves_and_results(student):
  workdir, _, _, result = student
  rows = [json.loads(x) for x in open(os.path.join(workdir, "metrics.jsonl"))]
  train_rows = [r for r in rows if r["split"] == "train"]
  assert {"loss_task", "distill_feature", "distill_output", "lr",
          "grad_norm"} <= set(train_rows[-1])
  assert any(r["split"] == "val" for r in rows)
  assert os.path.getsize(os.path.join(workdir, "curves.png")) > 1000
  assert os.listdir(os.path.join(workdir, "tensorboard"))
  saved = json.load(open(os.path.join(workdir, "results.json")))
  assert saved["test"]["count"] == 30 and np.isfinite(saved["test"]["mae"])
  assert result["best_step"] in (3, 6)


def test_predict_returns_per_example_outputs_of_the_best_checkpoint(student):
  workdir, _, _, result = student
  pred = predict(None, workdir, "test")
  src = toy.ToySource("test", num_identities=10)
  index = sources.split_index(src)
  np.testing.assert_array_equal(pred["record"], index.example_records())
  assert pred["pspi"].shape == (30,) and pred["au"].shape == (30, 6)
  assert np.all((pred["pspi"] >= 0) & (pred["pspi"] <= 16))
  np.testing.assert_allclose(pred["metrics"]["mae"], result["test"]["mae"],
                             rtol=1e-5)
  multi = predict(None, workdir, "test", num_references=3)
  assert not np.allclose(multi["pspi"], pred["pspi"])  # other references


def test_init_from_loads_a_previous_run(student, tmp_path):
  workdir = student[0]
  config = tiny_config("student")
  mesh = shd.create_mesh((1, 1, 1), config.mesh.axes, shd.jax.devices()[:1])
  setup = state.create(config, mesh, total_steps=1)
  fresh = state.host_params(setup)
  info = state.load_params_from_run(setup, workdir, "latest")
  loaded = state.host_params(setup)
  ck = ckpt_lib.Checkpointer(os.path.join(workdir, "checkpoints"),
                             read_only=True)
  want = shd.to_host(ck.restore(6, ckpt_lib.abstract(
      state.checkpoint_tree(setup))))
  np.testing.assert_array_equal(loaded["params/head/w1"],
                                want["train"]["params"]["head"]["w1"])
  assert not np.array_equal(loaded["params/head/w1"], fresh["params/head/w1"])
  assert info["skipped"] == 0 and info["step"] == 6


class _NaNLabels:
  """A source whose labels are NaN for some records (a bad shard)."""

  def __init__(self, source, bad):
    self.source, self.bad = source, set(int(i) for i in bad)

  def __len__(self):
    return len(self.source)

  def record_index(self):
    return self.source.record_index()

  def __getitem__(self, i):
    rec = dict(self.source[i])
    if int(i) in self.bad:
      rec["pspi"] = np.float32("nan")
    return rec


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
  config = _short(tiny_config("teacher"), steps=6, every=2)
  config.data.val_split = ""
  clean = toy.ToySource("train", 10)
  mesh = shd.create_mesh((-1, 1, 1), config.mesh.axes)
  ds = pipeline.train_dataset(
      clean, sources.split_index(clean), pipeline.InputSpec(("heatmap",),
                                                            seed=config.seed),
      8, shd.batch_sharding(mesh, config.batch_axes))
  third = [next(it) for it in [iter(ds)] for _ in range(3)][2]["record"]
  train = _NaNLabels(clean, third)  # steps 1-2 clean, step 3 NaN
  with pytest.raises(NonFiniteLossError, match="step 3.*step 2"):
    train_and_evaluate(config, str(tmp_path), sources={"train": train})
  ck = ckpt_lib.Checkpointer(str(tmp_path / "checkpoints"), read_only=True)
  assert ck.all_steps() == [2]
  pred = predict(None, str(tmp_path), "test", checkpoint="latest")
  assert np.all(np.isfinite(pred["pspi"]))


def _damage(step_dir):
  """Overwrites the array data of a checkpoint step with garbage."""
  for root, _, files in os.walk(os.path.join(step_dir, "state")):
    for f in files:
      if "ocdbt" in root or f.startswith("d"):
        with open(os.path.join(root, f), "wb") as fh:
          fh.write(b"garbage")


def _tree(folder):
  return {os.path.relpath(os.path.join(r, f), folder):
          open(os.path.join(r, f), "rb").read()
          for r, _, files in os.walk(folder) for f in files}


def test_damaged_checkpoint_falls_back_to_the_last_good_step(
    teacher_dir, tmp_path, caplog):
  workdir = str(tmp_path / "run")
  shutil.copytree(teacher_dir, workdir)
  ckpts = os.path.join(workdir, "checkpoints")
  _damage(os.path.join(ckpts, "4"))
  damaged, good = _tree(os.path.join(ckpts, "4")), _tree(
      os.path.join(ckpts, "2"))
  with caplog.at_level("WARNING"):
    result = train_and_evaluate(_short(tiny_config("teacher")), workdir)
  assert result["origin"] == "resumed from step 2 (damaged step 4 set aside)"
  assert result["status"] == "done" and result["step"] == 4
  assert "checkpoint step 4 is damaged; set aside as" in caplog.text
  assert _tree(os.path.join(ckpts, "4.damaged")) == damaged  # kept, renamed
  assert _tree(os.path.join(ckpts, "2")) == good
  assert ckpt_lib.Checkpointer(ckpts, read_only=True).all_steps() == [2, 4]


def test_no_readable_checkpoint_is_reported_and_left_alone(teacher_dir,
                                                           tmp_path):
  workdir = str(tmp_path / "run")
  shutil.copytree(teacher_dir, workdir)
  ckpts = os.path.join(workdir, "checkpoints")
  for step in ("2", "4"):
    _damage(os.path.join(ckpts, step))
  before = _tree(ckpts)
  with pytest.raises(ckpt_lib.CheckpointError, match="step 4.*other steps: "
                     r"\[2\]"):
    train_and_evaluate(_short(tiny_config("teacher")), workdir)
  assert _tree(ckpts) == before


@pytest.mark.parametrize("change, error, match", [
    (dict(mesh=(3, 1, 1)), shd.ShardingError, "covers 3 devices"),
    (dict(mesh=(-1, 3, 1)), shd.ShardingError, "multiple of 3"),
    (dict(batch=12), shd.ShardingError, "not divisible"),
    (dict(data="no_such_dataset"), sources.DataError, "no_such_dataset"),
])
def test_bad_input_is_named_before_anything_is_written(change, error, match,
                                                        tmp_path):
  config = tiny_config("teacher")
  if "mesh" in change:
    config.mesh.shape = change["mesh"]
  if "batch" in change:
    config.batch_size = change["batch"]
  if "data" in change:
    config.data.name = change["data"]
  with pytest.raises(error, match=match):
    train_and_evaluate(config, str(tmp_path / "run"))
  assert not os.path.exists(tmp_path / "run")  # nothing written
