"""Tests of the AU rig: names, validation, monotonicity and locality."""

import numpy as np
import pytest

from synth import records, rig


def test_every_blendshape_exists_in_the_head(head):
  for au, shapes in rig.AU_BLENDSHAPES.items():
    for shape in shapes:
      assert shape in head.expression_targets, (au, shape)
  assert set(records.AU_NAMES) <= set(rig.AU_BLENDSHAPES)
  assert rig.AU_MAX["AU43"] == 1
  assert all(v == 5 for k, v in rig.AU_MAX.items() if k != "AU43")


def test_region_contract_names_real_regions(head):
  for table in (rig.AU_REGIONS, rig.AU_FAR_REGIONS):
    for au, names in table.items():
      assert au in records.AU_NAMES
      for name in names:
        assert head.regions[name].sum() >= 20, (au, name)


def _region_disp(rig_, au, k, mask):
  return np.linalg.norm(rig_.offsets({au: k})[mask], axis=1)


@pytest.mark.parametrize("au", records.AU_NAMES)
def test_displacement_grows_strictly_in_the_au_region(au_rig, head, au):
  mask = np.logical_or.reduce([head.regions[r] for r in rig_regions(au)])
  means = [_region_disp(au_rig, au, k, mask).mean()
           for k in range(rig.AU_MAX[au] + 1)]
  assert means[0] == 0.0
  assert np.all(np.diff(means) > 0), means
  # The full AU is visible: at least 0.5 mm on average over its region.
  assert means[-1] > 5e-4, means


def rig_regions(au):
  return rig.AU_REGIONS[au]


@pytest.mark.parametrize("au", records.AU_NAMES)
def test_far_regions_stay_put(au_rig, head, au):
  full = np.linalg.norm(au_rig.offsets({au: rig.AU_MAX[au]}), axis=1)
  for name in rig.AU_FAR_REGIONS[au]:
    far = full[head.regions[name]]
    # Far regions move at most 10% of the AU's peak and under 1 mm (the
    # Face Units targets carry sub-mm falloff far from their centre).
    limit = min(0.1 * full.max(), 1e-3)
    assert far.max() <= limit, (au, name, far.max(), full.max())
    assert far.mean() <= 0.01 * full.max(), (au, name, far.mean())


def test_aus_add_linearly(au_rig, head):
  both = au_rig.offsets({"AU4": 2, "AU10": 3})
  np.testing.assert_allclose(
      both, au_rig.offsets({"AU4": 2}) + au_rig.offsets({"AU10": 3}), atol=1e-7)
  zero = au_rig.offsets({au: 0 for au in records.AU_NAMES})
  assert not zero.any()


def test_deform_adds_offsets_to_any_identity_mesh(au_rig, head):
  base = head.vertices + np.float32(0.01)
  aus = {"AU4": 3, "AU43": 1}
  out = au_rig.deform(base, aus)
  np.testing.assert_allclose(out - base, au_rig.offsets(aus), atol=1e-7)
  with pytest.raises(ValueError, match="shape"):
    au_rig.deform(base[:10], aus)


def test_distractor_aus_deform(au_rig):
  for au in ("AU1", "AU2", "AU12", "AU15", "AU20", "AU25", "AU26"):
    assert np.abs(au_rig.offsets({au: 5})).max() > 1e-3, au


@pytest.mark.parametrize("aus,match", [
    ({"AU99": 1}, r"unknown action unit 'AU99'; valid AUs are \['AU1'"),
    ({"AU4": 6}, r"AU4 intensity must be an integer in \[0, 5\], got 6"),
    ({"AU4": -1}, r"AU4 intensity .* got -1"),
    ({"AU43": 2}, r"AU43 intensity must be an integer in \[0, 1\]"),
    ({"AU6": 2.5}, r"AU6 intensity .* got 2.5"),
    ({"AU6": "3"}, r"AU6 intensity"),
    ({"AU6": True}, r"AU6 intensity"),
])
def test_bad_au_input(au_rig, aus, match):
  with pytest.raises(ValueError, match=match):
    au_rig.offsets(aus)


def test_au_vector_to_dict():
  d = rig.au_vector_to_dict(np.array([4, 2, 4, 3, 1, 1], np.float32))
  assert d == {"AU4": 4, "AU6": 2, "AU7": 4, "AU9": 3, "AU10": 1, "AU43": 1}
  assert all(type(v) is int for v in d.values())
  with pytest.raises(ValueError, match="shape"):
    rig.au_vector_to_dict(np.zeros(5))
  with pytest.raises(ValueError, match="AU43"):
    rig.au_vector_to_dict(np.array([0, 0, 0, 0, 0, 3]))
