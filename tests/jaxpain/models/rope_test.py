"""rope: the rotation in both token layouts leaves prefix tokens alone."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpain.models import rope


def _split_reference(x, sin, cos, prefix):
  """The rotation as split + rotate + concatenate, (B, N, heads, Dh)."""
  head, body = x[:, :prefix], x[:, prefix:]
  s, c = sin[None, :, None], cos[None, :, None]
  half = body.shape[-1] // 2
  rot = jnp.concatenate([-body[..., half:], body[..., :half]], -1)
  return jnp.concatenate([head, body * c + rot * s], axis=1)


def test_both_layouts_equal_the_split_rotation():
  sin, cos = rope.sincos(3, 4, 8)
  x = jax.random.normal(jax.random.key(0), (2, 5 + 12, 3, 8))

  @jax.jit
  def run(x):
    head_major = rope.apply(x.transpose(0, 2, 1, 3), sin, cos, 5,
                            token_axis=2)
    return (_split_reference(x, sin, cos, 5), rope.apply(x, sin, cos, 5),
            head_major.transpose(0, 2, 1, 3))

  want, token_major, head_major = run(x)
  np.testing.assert_allclose(token_major, want, atol=1e-6)
  np.testing.assert_allclose(head_major, want, atol=1e-6)
  np.testing.assert_array_equal(token_major[:, :5], x[:, :5])


def test_token_count_mismatch_is_refused():
  sin, cos = rope.sincos(3, 4, 8)
  with pytest.raises(ValueError, match='tokens'):
    rope.apply(jnp.zeros((1, 10, 2, 8)), sin, cos, 1)
