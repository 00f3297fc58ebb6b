"""Identity sampling: demographically balanced, continuously varied heads.

Balance is exact by construction: identity `index` falls in demographic cell
`index % 18` of the age (3) x gender (2) x ethnicity (3) grid, through a fixed
bijection, so for any number of identities every cell is within one identity
of equal. Everything continuous (age in years, ethnic mixing, body build and
face shape) comes from `SeedSequence([seed, index])`, so an identity depends
only on (seed, index), never on how many identities or workers there are.

Shape follows MakeHuman's macro modifiers: the ethnic targets
`<ethnicity>-<gender>-<age>` are weighted by ethnicity x gender x age weights,
the universal targets `universal-<gender>-<age>-<muscle>-<weight>` by
gender x age x muscle x weight weights (both bilinear in the slider values).
Face-shape variation adds symmetric face-region modifiers (nose, mouth, eyes,
chin, cheeks, forehead, head shape, brows, ears) at moderate strengths. A
linear shape space (FLAME) reads the 'pca/NNN' coefficients instead.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from synth import records
from synth.head import HeadModel

# Years covered by each age group (records.AGE_GROUPS order).
AGE_YEARS = {"young": (18.0, 35.0), "middle": (36.0, 59.0),
             "old": (60.0, 85.0)}
NUM_CELLS = (len(records.AGE_GROUPS) * len(records.GENDERS)
             * len(records.ETHNICITIES))
# Linear shape coefficients sampled for PCA backends (FLAME).
NUM_PCA = 50
# Signed face modifiers: (negative target, positive target, max strength).
# Target names without 'l-'/'r-' apply to both sides (symmetric faces).
_MODS = [
    ("nose/nose-scale-horiz-decr", "nose/nose-scale-horiz-incr", 0.6),
    ("nose/nose-scale-vert-decr", "nose/nose-scale-vert-incr", 0.5),
    ("nose/nose-scale-depth-decr", "nose/nose-scale-depth-incr", 0.5),
    ("nose/nose-point-width-decr", "nose/nose-point-width-incr", 0.5),
    ("nose/nose-nostrils-width-decr", "nose/nose-nostrils-width-incr", 0.5),
    ("nose/nose-hump-decr", "nose/nose-hump-incr", 0.5),
    ("nose/nose-flaring-decr", "nose/nose-flaring-incr", 0.5),
    ("nose/nose-curve-concave", "nose/nose-curve-convex", 0.4),
    ("nose/nose-trans-down", "nose/nose-trans-up", 0.3),
    ("mouth/mouth-scale-horiz-decr", "mouth/mouth-scale-horiz-incr", 0.5),
    ("mouth/mouth-scale-vert-decr", "mouth/mouth-scale-vert-incr", 0.4),
    ("mouth/mouth-lowerlip-volume-decr", "mouth/mouth-lowerlip-volume-incr",
     0.5),
    ("mouth/mouth-upperlip-volume-decr", "mouth/mouth-upperlip-volume-incr",
     0.5),
    ("mouth/mouth-cupidsbow-decr", "mouth/mouth-cupidsbow-incr", 0.4),
    ("mouth/mouth-trans-down", "mouth/mouth-trans-up", 0.3),
    ("mouth/mouth-angles-down", "mouth/mouth-angles-up", 0.3),
    ("eyes/eye-scale-decr", "eyes/eye-scale-incr", 0.4),
    ("eyes/eye-trans-in", "eyes/eye-trans-out", 0.3),
    ("eyes/eye-height2-decr", "eyes/eye-height2-incr", 0.4),
    ("eyes/eye-bag-decr", "eyes/eye-bag-incr", 0.4),
    ("eyes/eye-eyefold-angle-down", "eyes/eye-eyefold-angle-up", 0.4),
    ("eyes/eye-epicanthus-in", "eyes/eye-epicanthus-out", 0.3),
    ("chin/chin-width-decr", "chin/chin-width-incr", 0.5),
    ("chin/chin-height-decr", "chin/chin-height-incr", 0.5),
    ("chin/chin-prominent-decr", "chin/chin-prominent-incr", 0.5),
    ("chin/chin-bones-decr", "chin/chin-bones-incr", 0.4),
    ("cheek/cheek-bones-decr", "cheek/cheek-bones-incr", 0.5),
    ("cheek/cheek-volume-decr", "cheek/cheek-volume-incr", 0.5),
    ("cheek/cheek-inner-decr", "cheek/cheek-inner-incr", 0.4),
    ("forehead/forehead-scale-vert-decr", "forehead/forehead-scale-vert-incr",
     0.5),
    ("forehead/forehead-trans-backward", "forehead/forehead-trans-forward",
     0.4),
    ("forehead/forehead-temple-decr", "forehead/forehead-temple-incr", 0.4),
    ("head/head-scale-horiz-decr", "head/head-scale-horiz-incr", 0.3),
    ("head/head-scale-vert-decr", "head/head-scale-vert-incr", 0.3),
    ("head/head-scale-depth-decr", "head/head-scale-depth-incr", 0.3),
    ("head/head-fat-decr", "head/head-fat-incr", 0.5),
    ("eyebrows/eyebrows-angle-down", "eyebrows/eyebrows-angle-up", 0.4),
    ("eyebrows/eyebrows-trans-down", "eyebrows/eyebrows-trans-up", 0.3),
    ("ears/ear-scale-decr", "ears/ear-scale-incr", 0.4),
    ("ears/ear-flap-decr", "ears/ear-flap-incr", 0.4),
]
# One of these overall head shapes is blended in at up to 0.5.
_HEAD_SHAPES = ("head/head-oval", "head/head-round", "head/head-square",
                "head/head-rectangular", "head/head-triangular",
                "head/head-invertedtriangular", "head/head-diamond")
_SIDED_GROUPS = ("eyes/", "cheek/", "ears/")


@dataclasses.dataclass(frozen=True)
class Identity:
  """One synthetic person.

  Attributes:
    index: identity index in the dataset.
    seed: the dataset seed it was drawn with.
    demographics: the recorded labels.
    shape_weights: identity-target name -> weight; 'macro/...' and face-region
      names for MakeHuman, 'pca/NNN' coefficients for linear shape spaces.
  """

  index: int
  seed: int
  demographics: records.Demographics
  shape_weights: dict[str, float]


def demographic_cell(index: int) -> tuple[str, str, str]:
  """The (age_group, gender, ethnicity) cell of identity `index`.

  A bijection of `index % 18`; consecutive indices vary all three factors
  (the first 6 identities already cover every age, gender and ethnicity),
  so even small runs and contact sheets are diverse.
  """
  k = index % NUM_CELLS
  e = k % 3
  return (records.AGE_GROUPS[(e + k // 6) % 3], records.GENDERS[k % 2],
          records.ETHNICITIES[e])


def sample_identity(index: int, seed: int) -> Identity:
  """Draws identity `index` of the dataset with `seed`.

  Args:
    index: non-negative identity index.
    seed: non-negative dataset seed.

  Returns:
    The Identity; a function of (seed, index) only.
  """
  for name, v in (("index", index), ("seed", seed)):
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0:
      raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
  rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))
  age_group, gender, ethnicity = demographic_cell(int(index))
  lo, hi = AGE_YEARS[age_group]
  years = float(rng.uniform(lo, hi))
  mix = _ethnicity_mix(rng, records.ETHNICITIES.index(ethnicity))
  # MakeHuman gender slider: 0 female, 1 male; a little androgyny variation.
  gender_value = float(rng.uniform(0.0, 0.12))
  if gender == "male":
    gender_value = 1.0 - gender_value
  muscle, weight = float(rng.uniform(0.3, 0.7)), float(rng.uniform(0.2, 0.8))
  weights = macro_weights(years, gender_value, mix, muscle, weight)
  weights.update(_face_shape_weights(rng))
  weights.update(_pca_weights(rng))
  demo = records.Demographics(
      age_group=age_group, age_years=round(years, 2), gender=gender,
      ethnicity=ethnicity,
      ethnicity_mix=tuple(round(float(m), 6) for m in mix))
  return Identity(int(index), int(seed), demo, weights)


def sample_identities(n: int, seed: int) -> list[Identity]:
  """Identities 0..n-1 of the dataset with `seed`."""
  if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
    raise ValueError(f"the number of identities must be a positive integer, "
                     f"got {n!r}")
  return [sample_identity(i, seed) for i in range(int(n))]


def neutral_vertices(head: HeadModel, identity: Identity) -> np.ndarray:
  """The identity's neutral mesh on `head`.

  The identity's weights for the head's kind of targets are applied, then the
  mesh is shifted so the mean skin displacement is zero: macro targets move
  the whole head (taller or shorter bodies), and re-centring keeps every
  identity's head at the origin for the cameras.

  Returns:
    (V, 3) float32 vertices.

  Raises:
    ValueError: a weight names a target the head lacks.
  """
  linear = head.name != "makehuman"
  weights = {k: v for k, v in identity.shape_weights.items()
             if k.startswith("pca/") == linear}
  if linear:
    weights = {k: v for k, v in weights.items() if k in head.identity_targets}
  missing = sorted(set(weights) - set(head.identity_targets))
  if missing:
    raise ValueError(f"the {head.name} head lacks identity targets "
                     f"{missing[:5]} ({len(missing)} in all)")
  verts = head.apply_targets(weights, head.identity_targets)
  skin = head.parts["skin"]
  shift = (verts[skin] - head.vertices[skin]).mean(0)
  return (verts - shift).astype(np.float32)


def macro_weights(years: float, gender: float, mix: np.ndarray,
                  muscle: float, weight: float) -> dict[str, float]:
  """MakeHuman macro-target weights for slider values.

  Args:
    years: age in years (11..90 are covered by the child/young/old targets).
    gender: 0 female .. 1 male.
    mix: (3,) ethnicity weights in records.ETHNICITIES order, summing to 1.
    muscle, weight: MakeHuman muscle and weight sliders in [0, 1].

  Returns:
    'macro/<target>' -> weight, only non-zero entries.
  """
  ages = _age_weights(years)
  genders = {"female": 1.0 - gender, "male": gender}
  muscles = _tri_weights(muscle, ("minmuscle", "averagemuscle", "maxmuscle"))
  builds = _tri_weights(weight, ("minweight", "averageweight", "maxweight"))
  out = {}
  for g, wg in genders.items():
    for a, wa in ages.items():
      for e, we in zip(records.ETHNICITIES, mix, strict=True):
        out[f"macro/{e}-{g}-{a}"] = float(we * wg * wa)
      for m, wm in muscles.items():
        for b, wb in builds.items():
          out[f"macro/universal-{g}-{a}-{m}-{b}"] = float(wg * wa * wm * wb)
  return {k: v for k, v in out.items() if v > 0.0}


def _age_weights(years: float) -> dict[str, float]:
  """MakeHuman's age slider: 11 y = child, 25 y = young, 90 y = old."""
  if years <= 25.0:
    t = float(np.clip((years - 11.0) / 14.0, 0.0, 1.0))
    return {"child": 1.0 - t, "young": t}
  t = float(np.clip((years - 25.0) / 65.0, 0.0, 1.0))
  return {"young": 1.0 - t, "old": t}


def _tri_weights(v: float, names: tuple[str, str, str]) -> dict[str, float]:
  """Slider in [0, 1] with min/average/max targets at 0, 0.5, 1."""
  if v < 0.5:
    return {names[0]: 1.0 - 2 * v, names[1]: 2 * v}
  return {names[1]: 2.0 - 2 * v, names[2]: 2 * v - 1.0}


def _ethnicity_mix(rng: np.random.Generator, dominant: int) -> np.ndarray:
  """Dominant weight in [0.6, 1]; the rest split randomly between the others."""
  mix = np.zeros(3)
  mix[dominant] = rng.uniform(0.6, 1.0)
  split = rng.uniform()
  others = [i for i in range(3) if i != dominant]
  mix[others[0]] = (1.0 - mix[dominant]) * split
  mix[others[1]] = (1.0 - mix[dominant]) * (1.0 - split)
  return mix


def _face_shape_weights(rng: np.random.Generator) -> dict[str, float]:
  """Symmetric face-region modifier weights (truncated normal strengths)."""
  out = {}
  strengths = np.clip(rng.normal(0.0, 0.5, len(_MODS)), -1.0, 1.0)
  for (neg, pos, scale), s in zip(_MODS, strengths, strict=True):
    name = pos if s > 0 else neg
    for side_name in _sided(name):
      out[side_name] = float(abs(s) * scale)
  shape = _HEAD_SHAPES[rng.integers(len(_HEAD_SHAPES))]
  out[shape] = float(rng.uniform(0.0, 0.5))
  return out


def _sided(name: str) -> list[str]:
  """'eyes/eye-x' -> ['eyes/l-eye-x', 'eyes/r-eye-x']; others unchanged."""
  if not name.startswith(_SIDED_GROUPS):
    return [name]
  group, base = name.split("/", 1)
  return [f"{group}/l-{base}", f"{group}/r-{base}"]


def _pca_weights(rng: np.random.Generator) -> dict[str, float]:
  """Coefficients for linear shape spaces: N(0, 1) truncated at +-2."""
  z = np.clip(rng.normal(0.0, 1.0, NUM_PCA), -2.0, 2.0)
  return {f"pca/{i:03d}": float(v) for i, v in enumerate(z)}
