"""A procedural stand-in for 3DPain: same fields, learnable labels, no files.

For smoke runs, CI and tests of the training machinery where building the
real dataset would cost minutes. Every record is computed from
(seed, identity, expression, view) on access, so the source is tiny to
pickle and random-access like `tfds.data_source`.

Each identity has a skin colour, face shape and background; each view moves
and scales the face. Pain expressions draw AU intensities (AU43 0/1) and
darken six face regions in proportion (brow AU4, cheeks AU6, eyes AU7,
nose AU9, upper lip AU10, eye closure AU43); the heatmap is the same region
map without identity or view. So the heatmap predicts PSPI easily (a good
teacher), while from RGB the identity's own colour confounds the darkening
and the neutral reference of the same identity helps.

Registered as data name 'toy' ('toy/<n_identities>' for other sizes); splits
'train' / 'validation' / 'test' by identity (70 / 20 / 10).
"""

from __future__ import annotations

import numpy as np

from jaxpain.data import sources

NUM_PAIN = 10
NUM_VIEWS = 3
# Region centres (y, x) in face coordinates [-1, 1] and radii, per AU.
_REGIONS = (
    ((-0.45, 0.0), 0.35),  # AU4 brow lowerer: between the brows
    ((0.15, -0.5), 0.28),  # AU6 cheek raiser: left cheek
    ((-0.2, 0.45), 0.25),  # AU7 lid tightener: right eye
    ((0.05, 0.0), 0.22),  # AU9 nose wrinkler
    ((0.4, 0.0), 0.25),  # AU10 upper lip raiser
    ((-0.2, -0.45), 0.25),  # AU43 eyes closed: left eye
)


def split_identities(n: int, split: str) -> np.ndarray:
  """Identity ids of a split: 70 / 20 / 10 % by identity."""
  n_train, n_val = int(round(0.7 * n)), int(round(0.2 * n))
  bounds = {"train": (0, n_train), "validation": (n_train, n_train + n_val),
            "test": (n_train + n_val, n)}
  if split not in bounds:
    raise sources.DataError(f"toy data has splits {sorted(bounds)}: {split}")
  lo, hi = bounds[split]
  return np.arange(lo, hi)


class ToySource:
  """Random-access records of one split (see module docstring)."""

  def __init__(self, split: str = "train", num_identities: int = 30,
               size: int = 32, seed: int = 0):
    self.identities = split_identities(num_identities, split)
    self.size, self.seed = size, seed
    per_id = (NUM_PAIN + 1) * NUM_VIEWS
    self._per_id = per_id

  def __len__(self) -> int:
    return len(self.identities) * self._per_id

  def _decode(self, i: int) -> tuple[int, int, int]:
    k, r = divmod(int(i), self._per_id)
    expression, view = divmod(r, NUM_VIEWS)
    return int(self.identities[k]), expression, view

  def record_index(self) -> sources.SplitIndex:
    ids, exps, views = zip(*(self._decode(i) for i in range(len(self))),
                           strict=True)
    return sources.SplitIndex.from_labels(ids, exps, views)

  def au(self, identity: int, expression: int) -> np.ndarray:
    if expression == 0:
      return np.zeros(6, np.float32)
    rng = np.random.default_rng([self.seed, identity, expression, 1])
    au = rng.integers(0, 6, size=6).astype(np.float32)
    au[5] = float(rng.random() < 0.3)
    return au

  def _face(self, identity: int, view: int):
    rng = np.random.default_rng([self.seed, identity, 0])
    skin = rng.uniform(0.35, 0.9, 3)
    background = rng.uniform(0.0, 1.0, 3)
    shape = rng.uniform(0.8, 1.1, 2)
    vrng = np.random.default_rng([self.seed, identity, view, 2])
    shift = vrng.uniform(-0.12, 0.12, 2) if view else np.zeros(2)
    scale = 1.0 if view == 0 else vrng.uniform(0.85, 1.05)
    return skin, background, shape, shift, scale

  def _render(self, identity, expression, view):
    s = self.size
    skin, bg, shape, shift, scale = self._face(identity, view)
    yy, xx = np.meshgrid(np.linspace(-1, 1, s), np.linspace(-1, 1, s),
                         indexing="ij")
    fy = (yy - shift[0]) / (0.8 * scale * shape[0])
    fx = (xx - shift[1]) / (0.65 * scale * shape[1])
    face = (fy ** 2 + fx ** 2) <= 1.0
    au = self.au(identity, expression)
    amount = np.zeros((s, s), np.float32)
    for a, ((cy, cx), r) in zip(au / np.array([5, 5, 5, 5, 5, 1.0]),
                                _REGIONS, strict=True):
      amount += a * np.exp(-((fy - cy) ** 2 + (fx - cx) ** 2) / (r * r))
    amount = np.clip(amount, 0, 1) * face
    img = np.where(face[..., None], skin, bg) * (1 - 0.7 * amount[..., None])
    heat = np.zeros((s, s), np.float32)  # frontal, identity-free
    for a, ((cy, cx), r) in zip(au / np.array([5, 5, 5, 5, 5, 1.0]),
                                _REGIONS, strict=True):
      heat += a * np.exp(-((yy / 0.8 - cy) ** 2 + (xx / 0.65 - cx) ** 2)
                         / (r * r))
    to8 = lambda x: np.clip(np.round(255 * x), 0, 255).astype(np.uint8)
    return to8(img), to8(np.clip(heat, 0, 1))[..., None], au

  def __getitem__(self, i: int) -> dict:
    identity, expression, view = self._decode(i)
    image, heatmap, au = self._render(identity, expression, view)
    neutral, _, _ = self._render(identity, 0, view)
    pspi = au[0] + max(au[1], au[2]) + max(au[3], au[4]) + au[5]
    return {"image": image, "neutral_image": neutral, "heatmap": heatmap,
            "au": au, "pspi": np.float32(pspi), "identity": identity,
            "expression": expression, "view": view,
            "is_neutral": expression == 0}


def _factory(num_identities: int):
  def make(split: str, data_dir=None, size: int = 32):
    del data_dir
    return ToySource(split, num_identities, size)
  return make


for _n in (10, 30, 100, 300):
  sources.register_source(f"toy/{_n}", _factory(_n))
sources.register_source("toy", _factory(30))
