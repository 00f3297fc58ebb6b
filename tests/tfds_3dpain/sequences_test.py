"""`3dpain/sequences`: a tiny clips config built and read back through
`tfds.data_source`, its labels equal to the simulator's."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from synth.sequences import aus, clipset
from tfds_3dpain import sequences

FIELDS = dict(num_subjects=3, clips_per_subject=2, clip_s=0.6, source_s=40.0,
              resolution=32, texture_size=64)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  cfg = sequences.make_sequences_config("seq_test", num_workers=1, **FIELDS)
  builder = tfds.builder("3dpain", config=cfg,
                         data_dir=str(tmp_path_factory.mktemp("seq")))
  builder.download_and_prepare()
  return cfg, builder


def test_clips_read_back_with_their_labels(built):
  cfg, builder = built
  spec = cfg.sequences
  t = spec.clip_frames
  assert builder.info.file_format == tfds.core.FileFormat.ARRAY_RECORD
  assert builder.info.metadata["au_names"] == list(aus.SEQ_AUS)
  sizes = {k: v.num_examples for k, v in builder.info.splits.items()}
  assert sum(sizes.values()) == 6 and all(sizes.values())
  plans = {c.key: c for s in range(3) for c in clipset.plan_subject(spec, s)}
  seen = set()
  for split in sizes:
    source = tfds.data_source("3dpain", split=split,
                              data_dir=builder.data_dir_root,
                              builder_kwargs={"config": cfg})
    for i in range(len(source)):
      ex = source[i]
      plan = plans[ex["key"].decode() if isinstance(ex["key"], bytes)
                   else ex["key"]]
      frames = np.stack(ex["frames"])
      assert frames.shape == (t, 32, 32, 3) and frames.dtype == np.uint8
      assert ex["neutral_image"].shape == (32, 32, 3)
      assert ex["au"].shape == (t, aus.NUM_AUS)
      np.testing.assert_array_equal(ex["au"], plan.au)
      np.testing.assert_array_equal(ex["pspi"], aus.pspi(plan.au))
      np.testing.assert_array_equal(ex["stimulus"], plan.stimulus)
      assert ex["subject"] == plan.subject_id and ex["view"] == plan.view
      assert ex["emotion"] == plan.emotion
      assert np.float32(ex["expressiveness"]) == np.float32(
          plan.expressiveness)
      seen.add((split, plan.subject_id))
  by_subject = {}
  for split, subject in seen:
    by_subject.setdefault(subject, set()).add(split)
  assert sorted(by_subject) == [0, 1, 2]
  assert all(len(s) == 1 for s in by_subject.values())  # split by subject


def test_config_validation():
  with pytest.raises(ValueError, match="at least 3"):
    sequences.make_sequences_config("two", num_subjects=2)
  with pytest.raises(ValueError, match="clip_s"):
    sequences.make_sequences_config("long", num_subjects=3, clip_s=5.0,
                                    source_s=4.0)
