"""UNBC records for the trainer's grain pipeline: references and fallbacks."""

import numpy as np
import pytest

from jaxpain import data as jd
from jaxpain.data import sources
from jaxpain.eval import unbc_source
from tfds_3dpain.unbc_mcmaster import fabricate, folds


def test_sequence_start_policy_uses_no_labels(fab):
  src = unbc_source.TableSource(fab, "sequence_start", image_size=16)
  idx = src.record_index()
  assert idx.example.all()  # every UNBC frame is scored, PSPI 0 included
  # One reference per (subject, sequence), the lowest frame number.
  assert idx.reference.sum() == 20
  assert (fab.frame[idx.reference] == 1).all()
  # Shuffling the labels must not change the references.
  shuffled = fab.select(np.arange(len(fab)))
  shuffled.pspi = np.random.default_rng(0).permutation(shuffled.pspi)
  again = unbc_source.TableSource(shuffled, "sequence_start").record_index()
  np.testing.assert_array_equal(again.reference, idx.reference)
  rec = src[3]
  assert rec["image"].shape == (16, 16, 3) and rec["image"].dtype == np.uint8
  assert rec["identity"] == fab.subject[3]


def test_pspi0_policy_and_counted_fallback():
  data = fabricate.make_unbc(n_subjects=4, n_sequences=1, n_frames=6,
                             no_neutral_subjects=(1,))
  idx = unbc_source.TableSource(data, "pspi0").record_index()
  np.testing.assert_array_equal(idx.reference, data.pspi == 0)
  lacking = int(data.subjects()[1])
  got = unbc_source.fallback_counts(idx)
  assert got == {"subjects_without_reference": [lacking],
                 "frames_using_self_as_reference": 6}


def test_pipeline_draws_references_of_the_same_subject(fab):
  import jax
  from jax.sharding import NamedSharding, PartitionSpec

  src = unbc_source.TableSource(fab, "sequence_start")
  idx = src.record_index()
  sh = NamedSharding(jax.make_mesh((8,), ("data",)), PartitionSpec("data"))
  spec = jd.InputSpec(fields=("image", "neutral"), neutral_mode="random_view",
                      num_references=3)
  ds, n = jd.eval_dataset(src, idx, spec, 16, sh)
  assert n == len(fab)
  batch = next(iter(ds))
  assert batch["neutral"].shape == (16, 3, 32, 32, 3)
  starts = {int(s): [fab.image(j) for j in np.nonzero(
      idx.reference & (fab.subject == s))[0]] for s in fab.subjects()}
  for row in range(16):
    subj = int(batch["identity"][row])
    for shot in batch["neutral"][row]:
      assert any(np.array_equal(shot, ref) for ref in starts[subj])


def test_registered_table_source_serves_fold_splits(fab, archive_dir):
  fl = unbc_source.register_table_source(
      "unbc_test/px32", str(archive_dir), {"default": "sequence_start",
                                            "fold1+fold2": "pspi0"}, 32)
  assert fl == folds.make_folds(fab.subject, fab.pspi, 5, seed=0)
  test = sources.open_source("unbc_test/px32", "fold0")
  assert set(np.unique(test.data.subject)) == set(fl[0].test_subjects)
  assert test.policy == "sequence_start"
  train = sources.open_source("unbc_test/px32", "fold1+fold2")
  assert train.policy == "pspi0" and len(train) == 64
  with pytest.raises(sources.DataError, match=r"'train' is not one of"):
    sources.open_source("unbc_test/px32", "train")
