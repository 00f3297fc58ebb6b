"""Multi-shot prediction: post-sigmoid averaging over references."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxpain.eval import predict, unbc_source
from tfds_3dpain.unbc_mcmaster import fabricate


class RefProbe(nnx.Module):
  """PSPI depends on the reference only: sigmoid(8 * mean(neutral))."""

  def __init__(self):
    self.w = nnx.Param(jnp.ones(()))

  def __call__(self, images, neutral=None, deterministic=True):
    z = 8.0 * self.w * jnp.mean(neutral, axis=(1, 2, 3))
    return {"pspi": jax.nn.sigmoid(z), "au": jnp.stack([z] * 6, axis=1)}


def test_multishot_averages_post_sigmoid_outputs():
  # Two sequences per subject -> two label-free references per subject.
  data = fabricate.make_unbc(n_subjects=3, n_sequences=2, n_frames=4)
  src = unbc_source.TableSource(data, "sequence_start")
  idx = src.record_index()
  model = RefProbe()
  single = predict.predict(model, src, idx, predict.PredictSpec(
      image_size=16, num_references=1, batch_size=8))
  multi = predict.predict(model, src, idx, predict.PredictSpec(
      image_size=16, num_references=4, batch_size=8))
  np.testing.assert_array_equal(multi["record"], np.arange(len(data)))
  np.testing.assert_allclose(multi["pspi_true"], data.pspi)
  mixed = 0
  for s in data.subjects():
    rows = data.subject == s
    # The two per-reference probabilities of this subject.
    vals = np.unique(np.round(single["pspi_prob"][rows], 6))
    assert len(vals) <= 2
    a, b = (vals[0], vals[-1])
    allowed = [(k * a + (4 - k) * b) / 4 for k in range(5)]
    for p in multi["pspi_prob"][rows]:
      assert min(abs(p - x) for x in allowed) < 1e-5
      mixed += int(min(abs(p - a), abs(p - b)) > 1e-5)
  # Some frames averaged two different references (averaging logits instead
  # would land off the grid above).
  assert mixed > 0
  np.testing.assert_allclose(multi["pspi_pred"], 16 * multi["pspi_prob"])
