"""Parity with PyTorch: timm DINOv3 + peft LoRA + the torch ViTPain.

Tiny random models, nothing downloaded. LayerScale and LoRA B are set to
non-trivial random values so the blocks and the adapters matter. Images are
32x48 so the 2x3 patch grid pins RoPE's (row, column) order.
"""

import dataclasses
import functools

import numpy as np
import pytest

torch = pytest.importorskip('torch')
pytest.importorskip('timm')
pytest.importorskip('peft')

from jaxpain import convert  # noqa: E402
from jaxpain.baselines import torch_vitpain as tv  # noqa: E402
from jaxpain.models import vitpain  # noqa: E402
from tests.jaxpain.models.builders import forward_fn, images  # noqa: E402

VARIANT, H, W = 'Ti/16', 32, 48
KEYS = ('features', 'pspi', 'pspi_logit', 'binary_logits', 'au', 'tokens')


def _randomised_backbone(qkv_bias=False):
  e = tv.make_dinov3(VARIANT, qkv_bias=qkv_bias)
  with torch.no_grad():
    for name, p in e.named_parameters():
      if 'gamma' in name or name.endswith(('q_bias', 'v_bias')):
        p.normal_(0.0, 0.3)
  return e


@functools.cache
def torch_model(compat: bool):
  torch.manual_seed(int(compat))
  cfg = tv.TorchViTPainConfig(variant=VARIANT, official_compat=compat)
  m = tv.TorchViTPain(cfg, _randomised_backbone).eval()
  with torch.no_grad():
    for name, p in m.named_parameters():
      if 'lora_B' in name:
        p.normal_(0.0, 0.3)
  return m


def state_dict(compat: bool) -> dict:
  return {k: v.numpy().copy() for k, v in torch_model(compat).state_dict()
          .items()}


def jax_config(compat: bool, shared: bool = True) -> vitpain.ViTPainConfig:
  return vitpain.ViTPainConfig(
    variant=VARIANT, image_size=H, official_compat=compat,
    shared_base=shared)


def _torch_out(m, x, n):
  t = lambda a: torch.from_numpy(a.transpose(0, 3, 1, 2).copy())
  with torch.no_grad():
    out = m(t(x), None if n is None else t(n))
  return {k: v.numpy() for k, v in out.items()}


def _assert_close(jo, to, atol=1e-4):
  for k in KEYS:
    np.testing.assert_allclose(np.asarray(jo[k]), to[k], atol=atol, err_msg=k)


@pytest.mark.parametrize('compat', [False, True], ids=['dinov3', 'official'])
@pytest.mark.parametrize('with_neutral', [True, False])
def test_vitpain_matches_torch(compat, with_neutral):
  model = convert.vitpain_from_checkpoint(
    jax_config(compat), state_dict(compat))
  x, n = images(3, H, W, 0), images(3, H, W, 1) if with_neutral else None
  to = _torch_out(torch_model(compat), x, n)
  _assert_close(forward_fn()(model, x, n), to)
  # The paths really differ (RoPE and registers matter).
  other = _torch_out(torch_model(not compat), x, n)
  assert np.abs(other['features'] - to['features']).max() > 1e-2


def test_separate_bases_match_torch():
  model = convert.vitpain_from_checkpoint(
    jax_config(True, shared=False), state_dict(True))
  x, n = images(2, H, W, 2), images(2, H, W, 3)
  _assert_close(forward_fn()(model, x, n), _torch_out(torch_model(True), x, n))


@pytest.mark.parametrize('compat', [False, True], ids=['dinov3', 'official'])
def test_export_round_trip_is_exact(compat, tmp_path):
  sd = state_dict(compat)
  model = convert.vitpain_from_checkpoint(jax_config(compat), sd)
  out = convert.export_vitpain(model)
  assert list(out) == list(sd)
  for k in sd:
    assert out[k].dtype == sd[k].dtype and np.array_equal(out[k], sd[k]), k
  # Through a Lightning-style file: torch reads what we write, and the
  # restricted reader gives back exactly torch's tensors.
  path = tmp_path / 'vitpain.ckpt'
  convert.write_state_dict(out, path)
  loaded = torch.load(path, weights_only=True)['state_dict']
  back = convert.read_state_dict(path)
  for k in sd:
    assert np.array_equal(loaded[k].numpy(), sd[k])
    assert np.array_equal(back[k], sd[k])
  fresh = tv.TorchViTPain(tv.TorchViTPainConfig(
    variant=VARIANT, official_compat=compat))
  tv.load_checkpoint(fresh, path)
  assert all(torch.equal(v, torch_model(compat).state_dict()[k])
             for k, v in fresh.state_dict().items())


@pytest.mark.parametrize('qkv_bias', [False, True], ids=['qkv', 'qkvb'])
def test_timm_backbone_import_matches_timm(qkv_bias, tmp_path):
  """Backbone alone, from a safetensors file written by the real library:
  all tokens ([CLS, registers, patches], RoPE) match timm's, also for the
  `_qkvb` variant (q and v biases, k bias fixed at zero)."""
  from safetensors.torch import save_file

  eva = _randomised_backbone(qkv_bias).eval()
  path = tmp_path / 'dinov3.safetensors'
  save_file({k: v.contiguous() for k, v in eva.state_dict().items()}, path)
  cfg = dataclasses.replace(jax_config(False).backbone(1), lora=None,
                            qkv_bias=qkv_bias)
  enc = convert.vit_from_timm(cfg, path)
  x = images(2, H, W, 4)
  with torch.no_grad():
    ref = eva.forward_features(torch.from_numpy(x.transpose(0, 3, 1, 2)))
  np.testing.assert_allclose(np.asarray(enc(x)), ref.numpy(), atol=1e-4)
  exported = convert.export_backbone(enc)
  assert list(exported) == list(eva.state_dict())
  assert all(np.array_equal(exported[k], v.numpy())
             for k, v in eva.state_dict().items())
