"""Per-identity colour choices for the procedural texture.

Skin tone is mixed from per-ethnicity base colours by the identity's
`ethnicity_mix` (in sRGB, so a 70/30 mix looks 70/30), with a lightness and
hue jitter; hair and iris colours are drawn with probabilities that depend on
ethnicity and age (greying with age); men may get a beard shadow or be bald.
The palettes are plain sRGB triples, easy to edit.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from synth import records

SKIN_SRGB = {
  "african": (0.38, 0.25, 0.18),
  "asian": (0.86, 0.70, 0.56),
  "caucasian": (0.92, 0.74, 0.64),
}
HAIR_SRGB = {
  "black": (0.05, 0.04, 0.035),
  "dark_brown": (0.16, 0.10, 0.065),
  "brown": (0.32, 0.21, 0.12),
  "blonde": (0.66, 0.52, 0.33),
  "red": (0.48, 0.22, 0.10),
  "grey": (0.52, 0.51, 0.50),
  "white": (0.80, 0.79, 0.76),
}
IRIS_SRGB = {
  "dark_brown": (0.20, 0.11, 0.06),
  "brown": (0.38, 0.22, 0.10),
  "hazel": (0.45, 0.38, 0.18),
  "green": (0.30, 0.42, 0.28),
  "blue": (0.30, 0.45, 0.62),
}
PART_SRGB = {
  "teeth": (0.90, 0.87, 0.78),
  "tongue": (0.68, 0.30, 0.30),
}
PART_ROUGHNESS = {
  "eyes": 0.08,
  "teeth": 0.3,
  "tongue": 0.35,
  "eyelashes": 0.95,
}


def srgb_to_linear(c):
  c = np.asarray(c, np.float32)
  return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c):
  c = np.clip(c, 0.0, 1.0)
  return np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)


def _choose(rng, weights: dict[str, float]) -> str:
  names = list(weights)
  p = np.array([weights[n] for n in names], float)
  return names[rng.choice(len(names), p=p / p.sum())]


@dataclasses.dataclass(frozen=True)
class Style:
  """Per-identity colour choices (drawn from demographics)."""

  skin: np.ndarray  # linear RGB
  hair: np.ndarray
  iris: np.ndarray
  beard: float  # 0..1 beard-shadow strength
  scalp_hair: float  # 0 bald .. 1 full short hair
  hairline: float  # in units above the brows
  blush: float
  age: float  # 0 young .. 1 old


def sample_style(demo: records.Demographics, rng) -> Style:
  """Draws skin, hair and eye colours consistent with the demographics."""
  mix = np.asarray(demo.ethnicity_mix, np.float32)
  # Mixed in sRGB (perceptual) so a 70/30 mix looks 70/30, not lighter.
  base = srgb_to_linear(
    sum(
      w * np.asarray(SKIN_SRGB[n], np.float32)
      for w, n in zip(mix, records.ETHNICITIES, strict=True)
    )
  )
  skin = (
    base
    * np.exp(rng.normal(0.0, 0.12))
    * np.exp(rng.normal(0.0, 0.03, 3)).astype(np.float32)
  )
  age = float(np.clip((demo.age_years - 20.0) / 55.0, 0.0, 1.0))
  w_cau = float(mix[records.ETHNICITIES.index("caucasian")])
  grey = 0.02 + 0.9 * age**3
  hair = _choose(
    rng,
    {
      "black": 1.0 - 0.7 * w_cau,
      "dark_brown": 0.6,
      "brown": 0.2 + w_cau,
      "blonde": 0.6 * w_cau**2,
      "red": 0.15 * w_cau**2,
      "grey": 3 * grey,
      "white": grey * age,
    },
  )
  light = 0.7 * w_cau**2
  iris = _choose(
    rng,
    {
      "dark_brown": 1.0 - light,
      "brown": 0.5,
      "hazel": light * 0.6,
      "green": light * 0.5,
      "blue": light,
    },
  )
  male = demo.gender == "male"
  bald = male and rng.uniform() < 0.15 + 0.45 * age
  return Style(
    skin=skin.astype(np.float32),
    hair=srgb_to_linear(HAIR_SRGB[hair]),
    iris=srgb_to_linear(IRIS_SRGB[iris]),
    beard=float(rng.uniform(0.2, 1.0)) if male and rng.uniform() < 0.7 else 0.0,
    scalp_hair=0.0 if bald else float(rng.uniform(0.8, 1.0)),
    hairline=float(rng.uniform(1.2, 1.7) + (0.6 * age if male else 0.0)),
    blush=float(rng.uniform(0.2, 0.8)),
    age=age,
  )
