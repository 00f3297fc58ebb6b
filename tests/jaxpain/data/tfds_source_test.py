"""The pipeline over a real `tfds.data_source('3dpain/...')` (mocked records)."""

import jax
import numpy as np
import tensorflow_datasets as tfds

from jaxpain import sharding as shd
from jaxpain.data import pipeline, sources


def test_pipeline_reads_a_tfds_data_source():
  mesh = shd.create_mesh((1, 1, 1), ("data", "fsdp", "tensor"),
                         jax.devices()[:1])
  sh = shd.batch_sharding(mesh, ("data", "fsdp"))
  with tfds.testing.mock_data(num_examples=40,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    src = sources.open_source("3dpain/tiny", "train")
    index = sources.split_index(src, "3dpain/tiny", "train")
    want = np.array([src[i]["expression"] > 0 for i in range(len(src))])
    np.testing.assert_array_equal(index.example, want)
    spec = pipeline.InputSpec(fields=("image", "neutral", "heatmap"),
                              neutral_mode="random_view")
    it = pipeline.GlobalBatches(
        pipeline.train_dataset(src, index, spec, 4, sh), sh, 4)
    batch = next(it)
  assert batch["image"].shape == (4, 48, 48, 3)
  assert batch["neutral"].shape == (4, 48, 48, 3)
  assert batch["heatmap"].shape == (4, 48, 48, 1)
  assert isinstance(batch["pspi"], jax.Array)
  assert batch["pspi"].sharding.is_equivalent_to(sh, 1)
  rec = np.asarray(batch["record"])
  assert np.all(index.example[rec])
