"""The AU axis of pain sequences: which AUs, their ranges, PSPI, emotions.

A sequence frame is one vector of `SEQ_AUS` intensities at `FPS` frames per
second (reference.md §G.6: generate AU intensities directly, about 15 AUs at
25 fps). Every AU here is one the synth rig can pose (`synth.rig.
AU_BLENDSHAPES`), so a generated sequence drives the head frame by frame and
every rendered frame is labelled exactly. Intensities are continuous:
0..5 for graded AUs, AU43 (eyes closed) is 0 or 1.
"""

from __future__ import annotations

import numpy as np

FPS = 25
# The pain core of PSPI (AU4, AU6/7, AU9/10, AU43), brow and mouth AUs that
# occur with pain or with emotions, ordered by AU number.
SEQ_AUS: tuple[str, ...] = (
    "AU1", "AU2", "AU4", "AU6", "AU7", "AU9", "AU10", "AU12", "AU20",
    "AU25", "AU26", "AU27", "AU43",
)
NUM_AUS = len(SEQ_AUS)
AU_INDEX: dict[str, int] = {name: i for i, name in enumerate(SEQ_AUS)}
# Upper end of each AU's range, in SEQ_AUS order (lower end 0).
AU_MAX = np.array([1.0 if a == "AU43" else 5.0 for a in SEQ_AUS], np.float32)
BINARY_AUS: tuple[str, ...] = ("AU43",)
PAIN_CORE: tuple[str, ...] = ("AU4", "AU6", "AU7", "AU9", "AU10", "AU43")
PSPI_MAX = 16.0
# PainDiffusion's emotion classes, in its order (HSEmotion enet_b2_8).
EMOTIONS: tuple[str, ...] = (
    "Anger", "Contempt", "Disgust", "Fear", "Happiness", "Neutral",
    "Sadness", "Surprise",
)
NEUTRAL_EMOTION = EMOTIONS.index("Neutral")

_I = AU_INDEX


def pspi(au: np.ndarray) -> np.ndarray:
  """PSPI = AU4 + max(AU6, AU7) + max(AU9, AU10) + AU43, per frame.

  Args:
    au: (..., NUM_AUS) intensities in SEQ_AUS order: a numpy array, or any
      array with `__array_namespace__` (a jax array, also under jit).

  Returns:
    (...) PSPI in [0, 16], the dtype of `au`.

  Raises:
    ValueError: the last axis is not NUM_AUS long.
  """
  if not hasattr(au, "shape"):
    au = np.asarray(au, np.float32)
  if au.shape[-1] != NUM_AUS:
    raise ValueError(f"pspi expects the last axis to hold the {NUM_AUS} "
                     f"SEQ_AUS {SEQ_AUS}, got shape {tuple(au.shape)}")
  # The array's own namespace (array API): numpy here, jax.numpy inside a
  # jitted model, without this layer importing jax.
  xp = au.__array_namespace__() if hasattr(au, "__array_namespace__") else np
  return (au[..., _I["AU4"]]
          + xp.maximum(au[..., _I["AU6"]], au[..., _I["AU7"]])
          + xp.maximum(au[..., _I["AU9"]], au[..., _I["AU10"]])
          + au[..., _I["AU43"]])



def saturate(x: np.ndarray, knee: float = 4.0, top: float = 5.0
             ) -> np.ndarray:
  """Soft saturation: 0 below 0, identity up to `knee`, then an exponential
  approach to `top` (continuous slope at the knee, never above `top`)."""
  x = np.maximum(np.asarray(x, np.float32), 0.0)
  span = top - knee
  over = knee + span * -np.expm1(-(x - knee) / span)
  return np.where(x > knee, over, x).astype(np.float32)


def au_dict(frame: np.ndarray) -> dict[str, float]:
  """One (NUM_AUS,) frame -> {AU name: intensity}."""
  frame = np.asarray(frame, np.float32)
  if frame.shape != (NUM_AUS,):
    raise ValueError(f"expected one frame of shape ({NUM_AUS},), got "
                     f"{frame.shape}")
  return {name: float(v) for name, v in zip(SEQ_AUS, frame, strict=True)}
