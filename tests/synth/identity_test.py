"""Tests of identity sampling: balance, determinism, plausible heads."""

import collections

import numpy as np
import pytest

from synth import identity, records


@pytest.mark.parametrize("n", [1, 17, 18, 37, 100])
def test_demographic_cells_within_one_of_equal(n):
  ids = identity.sample_identities(n, seed=3)
  cells = collections.Counter(
      (i.demographics.age_group, i.demographics.gender,
       i.demographics.ethnicity) for i in ids)
  counts = [cells.get((a, g, e), 0) for a in records.AGE_GROUPS
            for g in records.GENDERS for e in records.ETHNICITIES]
  assert len(counts) == 18 and sum(counts) == n
  assert max(counts) - min(counts) <= 1, counts


def test_cell_map_is_a_bijection_and_small_runs_are_diverse():
  cells = [identity.demographic_cell(i) for i in range(18)]
  assert len(set(cells)) == 18
  first6 = cells[:6]
  for axis, names in enumerate((records.AGE_GROUPS, records.GENDERS,
                                records.ETHNICITIES)):
    assert {c[axis] for c in first6} == set(names)


def test_labels_are_consistent():
  for ident in identity.sample_identities(36, seed=0):
    d = ident.demographics
    lo, hi = identity.AGE_YEARS[d.age_group]
    assert lo <= d.age_years <= hi
    mix = np.array(d.ethnicity_mix)
    assert abs(mix.sum() - 1.0) < 1e-5 and mix.min() >= 0
    assert records.ETHNICITIES[int(np.argmax(mix))] == d.ethnicity
    assert mix.max() >= 0.6 - 1e-6


def test_macro_weights_mix_bilinearly():
  w = identity.macro_weights(years=57.5, gender=0.25,
                             mix=np.array([0.5, 0.3, 0.2]), muscle=0.5,
                             weight=0.5)
  # 57.5 y is halfway between young (25) and old (90).
  assert w["macro/african-female-young"] == pytest.approx(0.5 * 0.75 * 0.5)
  assert w["macro/asian-male-old"] == pytest.approx(0.3 * 0.25 * 0.5)
  ethnic = sum(v for k, v in w.items() if "universal" not in k)
  universal = sum(v for k, v in w.items() if "universal" in k)
  assert ethnic == pytest.approx(1.0) and universal == pytest.approx(1.0)
  assert w["macro/universal-male-old-averagemuscle-averageweight"] == (
      pytest.approx(0.25 * 0.5))


def test_identity_depends_only_on_seed_and_index(head):
  a = identity.sample_identity(7, seed=11)
  b = identity.sample_identities(20, seed=11)[7]
  assert a == b
  np.testing.assert_array_equal(identity.neutral_vertices(head, a),
                                identity.neutral_vertices(head, b))
  c = identity.sample_identity(8, seed=11)
  d = identity.sample_identity(7, seed=12)
  va = identity.neutral_vertices(head, a)
  for other in (c, d):
    assert other.shape_weights != a.shape_weights
    assert np.abs(identity.neutral_vertices(head, other) - va).max() > 1e-3


def test_neutral_vertices_are_plausible_heads(head):
  for ident in identity.sample_identities(6, seed=5):
    v = identity.neutral_vertices(head, ident)
    assert v.shape == head.vertices.shape and v.dtype == np.float32
    assert np.isfinite(v).all()
    skin = v[head.parts["skin"]]
    # Centred: the skin's mean displacement from the template is zero.
    np.testing.assert_allclose(
        (skin - head.vertices[head.parts["skin"]]).mean(0), 0, atol=1e-6)
    size = skin.max(0) - skin.min(0)
    assert np.all(size > [0.13, 0.2, 0.16]) and np.all(size < [0.22, 0.34,
                                                                 0.28])
    # The face looks to +z: the nose tip is the front-most skin point.
    nose_z = v[head.regions["nose"], 2].max()
    assert nose_z >= skin[:, 2].max() - 1e-6
    # Mirror symmetry survives (symmetric modifiers only).
    assert abs(skin[:, 0].max() + skin[:, 0].min()) < 2e-3


def test_face_shape_targets_exist_in_head(head):
  ident = identity.sample_identity(0, seed=0)
  mh = [k for k in ident.shape_weights if not k.startswith("pca/")]
  assert set(mh) <= set(head.identity_targets)
  groups = {k.split("/")[0] for k in mh}
  assert {"macro", "nose", "mouth", "eyes", "chin", "cheek", "forehead",
          "head"} <= groups


@pytest.mark.parametrize("args,match", [
    ((-1, 0), "index"), ((0, -5), "seed"), ((1.5, 0), "index"),
])
def test_bad_identity_arguments(args, match):
  with pytest.raises(ValueError, match=match):
    identity.sample_identity(*args)
  with pytest.raises(ValueError, match="positive integer"):
    identity.sample_identities(0, seed=0)
