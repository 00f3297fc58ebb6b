"""grain pipeline: shuffling, process rows, neutral pairing, padding, state."""

import numpy as np
import pytest

from jaxpain.data import pipeline, sources, toy


@pytest.fixture(scope="module")
def train():
  src = toy.ToySource("train", num_identities=10, size=16)
  return src, sources.split_index(src)


def _take(ds, n):
  it = iter(ds)
  return [next(it) for _ in range(n)]


def test_batches_hold_pain_examples_with_the_requested_fields(train, sharding):
  src, index = train
  spec = pipeline.InputSpec(fields=("image", "neutral", "heatmap"))
  (b,) = _take(pipeline.train_dataset(src, index, spec, 8, sharding), 1)
  assert b["image"].shape == (8, 16, 16, 3) and b["image"].dtype == np.uint8
  assert b["neutral"].shape == (8, 16, 16, 3)
  assert b["heatmap"].shape == (8, 16, 16, 1)
  assert b["au"].shape == (8, 6) and b["pspi"].shape == (8,)
  assert np.all(index.example[b["record"]])  # pain records only
  for i, r in enumerate(b["record"]):  # fields belong to the same record
    np.testing.assert_array_equal(b["image"][i], src[int(r)]["image"])
    np.testing.assert_array_equal(b["neutral"][i],
                                  src[int(r)]["neutral_image"])


def test_shuffle_is_seeded_and_each_epoch_covers_every_example(train,
                                                              sharding):
  src, index = train
  spec = pipeline.InputSpec(fields=("image",), seed=3)
  n = len(index.example_records())  # 210 -> 26 full batches per epoch
  ds = pipeline.train_dataset(src, index, spec, 8, sharding)
  first = np.concatenate([b["record"] for b in _take(ds, 26)])
  again = np.concatenate([b["record"] for b in _take(ds, 26)])
  np.testing.assert_array_equal(first, again)
  assert len(set(first)) == len(first) == 208 and n == 210
  other = pipeline.train_dataset(
      src, index, pipeline.InputSpec(fields=("image",), seed=4), 8, sharding)
  assert not np.array_equal(first[:8], _take(other, 1)[0]["record"])


def test_process_rows_partition_the_global_batch(train, sharding):
  """Two 'processes' holding rows 0-4 and 4-8 load exactly the 1-process
  batch: the property that makes 2x4 devices equal to 1x8."""
  src, index = train
  spec = pipeline.InputSpec(fields=("image", "neutral"),
                            neutral_mode="random_view")
  whole = _take(pipeline.train_dataset(src, index, spec, 8, sharding), 3)
  parts = [_take(pipeline.train_dataset(src, index, spec, 8, sharding,
                                        rows=r), 3)
           for r in ((0, 4), (4, 8))]
  for k in range(3):
    for key in ("record", "image", "neutral"):
      np.testing.assert_array_equal(
          np.concatenate([parts[0][k][key], parts[1][k][key]]),
          whole[k][key])


def test_random_view_reference_is_a_neutral_of_the_same_identity(train,
                                                                 sharding):
  src, index = train
  spec = pipeline.InputSpec(fields=("neutral",), neutral_mode="random_view")
  batches = _take(pipeline.train_dataset(src, index, spec, 8, sharding), 4)
  views_seen = set()
  for b in batches:
    for i, r in enumerate(b["record"]):
      ident = index.identity[int(r)]
      refs = [j for j in np.nonzero(index.reference)[0]
              if index.identity[j] == ident]
      match = [j for j in refs
               if np.array_equal(src[int(j)]["image"], b["neutral"][i])]
      assert match, "reference is not a neutral image of the identity"
      views_seen.add(int(index.view[match[0]]) - int(index.view[int(r)]))
  assert len(views_seen) > 1  # not always the same view


def test_multi_shot_references(train, sharding):
  src, index = train
  spec = pipeline.InputSpec(fields=("image", "neutral"), num_references=5)
  ds, n = pipeline.eval_dataset(src, index, spec, 8, sharding)
  b = next(iter(ds))
  assert b["neutral"].shape == (8, 5, 16, 16, 3)


def test_eval_pass_is_ordered_and_padded(train, sharding):
  src, index = train
  ds, n = pipeline.eval_dataset(src, index, pipeline.InputSpec(
      fields=("image",)), 16, sharding)
  batches = list(iter(ds))
  rec = np.concatenate([b["record"] for b in batches])
  mask = np.concatenate([b["mask"] for b in batches])
  assert len(rec) == 224 and n == 210  # 14 batches of 16
  np.testing.assert_array_equal(rec[:n], index.example_records())
  assert mask[:n].all() and not mask[n:].any()


def test_iterator_state_resumes_exactly(train, sharding):
  src, index = train
  ds = pipeline.train_dataset(src, index, pipeline.InputSpec(
      fields=("image",)), 8, sharding)
  it = iter(ds)
  for _ in range(3):
    next(it)
  saved = it.get_state()
  want = [next(it)["record"] for _ in range(2)]
  fresh = iter(ds)
  fresh.set_state(saved)
  got = [next(fresh)["record"] for _ in range(2)]
  np.testing.assert_array_equal(np.stack(got), np.stack(want))


def test_worker_processes_give_the_same_batches(train, sharding):
  src, index = train
  spec = pipeline.InputSpec(fields=("image", "neutral"),
                            neutral_mode="random_view")
  local = _take(pipeline.train_dataset(src, index, spec, 8, sharding), 2)
  workers = _take(pipeline.train_dataset(src, index, spec, 8, sharding,
                                         num_workers=1), 2)
  for a, b in zip(local, workers, strict=True):
    np.testing.assert_array_equal(a["neutral"], b["neutral"])


def test_missing_fields_and_datasets_are_named(sharding):
  src = sources.ArraySource({
      "image": np.zeros((16, 8, 8, 3), np.uint8),
      "au": np.zeros((16, 6), np.float32), "pspi": np.zeros(16, np.float32),
  })
  spec = pipeline.InputSpec(fields=("image", "heatmap"))
  ds = pipeline.train_dataset(src, sources.split_index(src), spec, 8,
                              sharding)
  with pytest.raises(sources.DataError, match="heatmap"):
    next(iter(ds))
  with pytest.raises(sources.DataError, match="no_such_dataset"):
    sources.open_source("no_such_dataset", "train", "/nonexistent")
  with pytest.raises(sources.DataError, match="fewer than one batch"):
    pipeline.train_dataset(src, sources.split_index(src), spec, 32, sharding)


def test_toy_labels_are_consistent():
  src = toy.ToySource("validation", num_identities=10, size=16)
  index = src.record_index()
  for i in range(0, len(src), 7):
    r = src[i]
    au = r["au"]
    assert r["pspi"] == au[0] + max(au[1], au[2]) + max(au[3], au[4]) + au[5]
    if r["expression"] == 0:
      assert not au.any() and np.array_equal(r["image"], r["neutral_image"])
    assert index.example[i] == (r["expression"] > 0)
  test_ids = set(toy.split_identities(10, "test"))
  assert not test_ids & set(toy.split_identities(10, "train"))


def test_prefetching_batches_checkpoint_the_next_unseen_batch(train,
                                                              sharding):
  src, index = train
  ds = pipeline.train_dataset(src, index, pipeline.InputSpec(
      fields=("image",)), 8, sharding)
  ahead = pipeline.GlobalBatches(ds, sharding, 8, prefetch=2)
  for _ in range(3):
    next(ahead)
  saved = ahead.checkpointable().get_state()  # 2 more batches are in flight
  want = np.asarray(next(ahead)["record"])
  fresh = pipeline.GlobalBatches(ds, sharding, 8, prefetch=2)
  fresh.checkpointable().set_state(saved)
  np.testing.assert_array_equal(np.asarray(next(fresh)["record"]), want)
