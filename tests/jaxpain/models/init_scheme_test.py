"""init_scheme: 'released' (DINOv3 + torch heads) against 'scratch'.

What matters for training without pretrained weights: under 'released' a
fresh model is close to a constant function of the image (LayerScale 1e-5
mutes the blocks, 0.02 kernels suit width 1024, torch's head init shrinks
the signal per layer), so the gradient that must make it image-dependent
starts near zero; under 'scratch' the CLS token and the PSPI logit already
vary with the image, and a small model fits a local target in a few dozen
steps.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxpain.models import layers, vit, vitpain
from jaxpain.train import config as config_lib
from tests.jaxpain.models.builders import fresh_model, images


def _spread(m, x):
  """Std over images of the CLS feature and of the PSPI logit."""
  out = m(jnp.asarray(x))
  return (float(out['features'].std(0).mean()),
          float(out['pspi_logit'].std()))


def test_scratch_makes_fresh_outputs_depend_on_the_image():
  x = images(16, seed=3)
  cls_rel, logit_rel = _spread(fresh_model(use_neutral=False), x)
  cls_scr, logit_scr = _spread(
    fresh_model(use_neutral=False, init_scheme='scratch'), x)
  assert cls_rel < 1e-3  # blocks muted: CLS is the same for every image
  assert cls_scr > 30 * cls_rel and cls_scr > 0.05
  assert logit_scr > 30 * logit_rel


def test_scratch_parameter_scales():
  m = fresh_model(init_scheme='scratch')
  block = m.encoder.blocks[0]
  np.testing.assert_allclose(block.gamma_1[...], 1.0)
  d = block.fc1.kernel.shape[0]
  std = float(np.asarray(block.fc1.kernel[...]).std())
  assert 0.6 / np.sqrt(d) < std < 1.1 / np.sqrt(d)  # truncated LeCun normal
  lin = m.pspi_head.linears[1]
  bound = np.sqrt(6.0 / 512)
  assert 0.9 * bound < float(jnp.abs(lin.kernel[...]).max()) <= bound
  assert float(jnp.abs(lin.bias[...]).max()) == 0.0
  assert float(jnp.abs(m.binary_heads.bias[...]).max()) == 0.0


def test_released_scheme_is_the_default_and_unchanged():
  m = fresh_model()
  np.testing.assert_allclose(m.encoder.blocks[0].gamma_1[...], 1e-5)
  assert vitpain.ViTPainConfig().init_scheme == 'released'
  assert vit.ViTConfig().layerscale == 1e-5
  assert vit.ViTConfig(init_scheme='scratch').layerscale == 1.0
  assert vit.ViTConfig(init_scheme='scratch',
                       layerscale_init=0.5).layerscale == 0.5


def _fit(init_scheme: str, steps: int = 60) -> float:
  """Correlation after fitting 'top-left minus bottom-right brightness'
  (local, position-dependent, uncorrelated with the image mean) on 64
  random images."""
  rng = np.random.RandomState(0)
  x = rng.randn(64, 32, 32, 3).astype(np.float32)
  y = x[:, :16, :16].mean((1, 2, 3)) - x[:, 16:, 16:].mean((1, 2, 3))
  y = (y - y.mean()) / y.std()
  cfg = vitpain.ViTPainConfig(variant='mu/16', image_size=32, patch_size=8,
                              use_neutral=False, init_scheme=init_scheme)
  key = lambda s: jax.random.key(s, impl='unsafe_rbg')
  m = vitpain.ViTPain(cfg, rngs=nnx.Rngs(params=key(0), dropout=key(1)))
  opt = nnx.Optimizer(m, optax.adam(3e-3), wrt=nnx.Param)

  @nnx.jit
  def step(m, opt, xb, yb):
    loss = lambda m: jnp.mean((m(xb)['pspi_logit'] - yb) ** 2)
    _, g = nnx.value_and_grad(loss)(m)
    opt.update(m, g)

  for i in range(steps):
    idx = np.random.RandomState(i).choice(64, 16)
    step(m, opt, x[idx], y[idx])
  pred = np.asarray(m(jnp.asarray(x))['pspi_logit'])
  return float(np.corrcoef(pred, y)[0, 1])


def test_scratch_init_learns_a_local_target_quickly():
  assert _fit('scratch') > 0.8


def test_unknown_scheme_is_refused():
  with pytest.raises(ValueError, match='init_scheme'):
    vitpain.ViTPainConfig(init_scheme='xavier')
  with pytest.raises(ValueError, match='init_scheme'):
    layers.head_kernel_init(8, 'xavier')
  c = config_lib.base_config()
  c.model.init_scheme = 'xavier'
  with pytest.raises(config_lib.ConfigError, match='init_scheme'):
    config_lib.validate(c)


def test_runlocal_trains_from_scratch_with_the_scratch_scheme():
  c = config_lib.base_config()
  config_lib.apply_args(c, config_lib.parse_arg('runlocal'))
  assert c.model.init_scheme == 'scratch' and c.model.train_base
  config_lib.apply_args(c, config_lib.parse_arg('init_scheme=released'))
  assert c.model.init_scheme == 'released'
