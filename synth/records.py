"""The data model of one 3DPain image: what synth produces and TFDS stores.

Every image of the dataset (pain or neutral, any view) is one `ImageRecord`.
The TFDS builder (`tfds_3dpain`) writes exactly these fields, so this module is
the contract between the generator and every consumer.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# Order used everywhere (labels, model outputs, TFDS feature): reference.md §A.3.
AU_NAMES: tuple[str, ...] = ("AU4", "AU6", "AU7", "AU9", "AU10", "AU43")
AGE_GROUPS: tuple[str, ...] = ("young", "middle", "old")
GENDERS: tuple[str, ...] = ("female", "male")
ETHNICITIES: tuple[str, ...] = ("african", "asian", "caucasian")
NUM_PAIN_EXPRESSIONS = 10
NUM_VIEWS = 3


def pspi(au: np.ndarray) -> np.ndarray:
  """Prkachin-Solomon Pain Intensity from AU intensities in `AU_NAMES` order.

  PSPI = AU4 + max(AU6, AU7) + max(AU9, AU10) + AU43, in [0, 16].
  Works on a single (6,) vector or a batch (..., 6).
  """
  au = np.asarray(au)
  if au.shape[-1] != len(AU_NAMES):
    raise ValueError(
        f"pspi expects the last axis to hold {len(AU_NAMES)} AUs "
        f"{AU_NAMES}, got shape {au.shape}"
    )
  return (
      au[..., 0]
      + np.maximum(au[..., 1], au[..., 2])
      + np.maximum(au[..., 3], au[..., 4])
      + au[..., 5]
  )


@dataclasses.dataclass(frozen=True)
class Demographics:
  """Demographic labels of one identity.

  Attributes:
    age_group: one of AGE_GROUPS.
    age_years: the sampled age in years (continuous, within the group).
    gender: one of GENDERS.
    ethnicity: the dominant ethnicity, one of ETHNICITIES.
    ethnicity_mix: weights over ETHNICITIES, summing to 1 (MakeHuman's
      continuous macro mixing).
  """

  age_group: str
  age_years: float
  gender: str
  ethnicity: str
  ethnicity_mix: tuple[float, float, float]


@dataclasses.dataclass
class ImageRecord:
  """One image of 3DPain with all its labels.

  Attributes:
    key: stable unique key, `identity_key(identity, expression, view)`.
    identity: identity index in [0, num_identities).
    expression: 0 for the neutral expression, 1..10 for pain expressions.
    view: camera index in [0, NUM_VIEWS); 0 is the frontal view.
    yaw_deg, pitch_deg: camera angles of this view, degrees.
    image: (H, W, 3) uint8 RGB render.
    neutral_image: (H, W, 3) uint8, the neutral expression of the same
      identity and view (equal to `image` when expression == 0).
    heatmap: (H, W, 1) uint8 pain-region map (frontal); all zero for neutral.
    au: (6,) float32 AU intensities in AU_NAMES order (integers stored as
      floats; AU43 is 0 or 1).
    pspi: PSPI of `au`.
    demographics: the identity's demographic labels.
    seed: the seed the identity was generated from (reproducibility).
  """

  key: str
  identity: int
  expression: int
  view: int
  yaw_deg: float
  pitch_deg: float
  image: np.ndarray
  neutral_image: np.ndarray
  heatmap: np.ndarray
  au: np.ndarray
  pspi: float
  demographics: Demographics
  seed: int

  @property
  def is_neutral(self) -> bool:
    return self.expression == 0


def identity_key(identity: int, expression: int, view: int) -> str:
  """Stable string key of one image, sortable by identity."""
  return f"id{identity:05d}_expr{expression:02d}_view{view}"
