"""Frames <-> tokens, and the normalisation between AU units and the model.

The model sees `frames_per_token` (fs) consecutive frames of K AUs as one
token of fs*K features (reference.md §G.2: frame stacking, one noise level
per token). Each AU is z-scored with statistics of the training data and
scaled to sigma_data, so the EDM preconditioning sees data of the standard
deviation it assumes (§G.2: "a port should z-score each dimension"). The
AU ranges map to per-feature bounds in that space: the sampler clips the
denoised estimate to them, so every output lies in [0, au_max] exactly and
the resting value 0 stays reachable (a sigmoid head could only approach it).

The stimulus enters per token with a look-back: token j sees its own fs
frames and those of the `history` tokens before it (a response can lag its
stimulus by up to 1.5 s, longer than the part of a window a new token can
attend to), so a window needs (history + W) * fs stimulus frames.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

# Lower bound of an AU's scale, as a fraction of its range: an AU that
# almost never fires in the training data must not blow up to huge z.
MIN_STD_FRACTION = 0.1


@dataclasses.dataclass(frozen=True)
class Normaliser:
  """Per-AU and per-signal statistics; part of a trained model's config."""

  au_mean: tuple[float, ...]
  au_std: tuple[float, ...]
  au_max: tuple[float, ...]  # upper bound of each AU (5, or 1 for AU43)
  stim_mean: float = 0.0
  stim_std: float = 1.0
  expr_mean: float = 0.0
  expr_std: float = 1.0
  sigma_data: float = 0.5

  @classmethod
  def fit(cls, au: np.ndarray, stimulus: np.ndarray,
          expressiveness: np.ndarray, au_max: np.ndarray,
          sigma_data: float = 0.5) -> Normaliser:
    """Statistics of training data: au (..., K), stimulus, expressiveness."""
    au = np.asarray(au, np.float64).reshape(-1, np.shape(au)[-1])
    au_max = np.asarray(au_max, np.float64)
    std = np.maximum(au.std(0), MIN_STD_FRACTION * au_max)
    stim = np.asarray(stimulus, np.float64)
    expr = np.asarray(expressiveness, np.float64)
    return cls(
        au_mean=tuple(float(x) for x in au.mean(0)),
        au_std=tuple(float(x) for x in std),
        au_max=tuple(float(x) for x in au_max),
        stim_mean=float(stim.mean()), stim_std=float(max(stim.std(), 1e-6)),
        expr_mean=float(expr.mean()), expr_std=float(max(expr.std(), 1e-6)),
        sigma_data=float(sigma_data))

  @classmethod
  def identity(cls, num_aus: int, sigma_data: float = 0.5) -> Normaliser:
    """Unfitted statistics (tests, abstract models)."""
    return cls((0.0,) * num_aus, (1.0,) * num_aus, (5.0,) * num_aus,
               sigma_data=sigma_data)

  @property
  def num_aus(self) -> int:
    return len(self.au_mean)

  def _arrays(self, xp):
    mean = xp.asarray(self.au_mean, xp.float32)
    scale = xp.asarray(self.au_std, xp.float32) / self.sigma_data
    return mean, scale

  def au_to_model(self, au, xp=jnp):
    """AU intensities (..., K) -> normalised features (..., K)."""
    mean, scale = self._arrays(xp)
    return (au - mean) / scale

  def au_from_model(self, z, xp=jnp):
    """Normalised features (..., K) -> AU intensities, clipped to range."""
    mean, scale = self._arrays(xp)
    au = z * scale + mean
    return xp.clip(au, 0.0, xp.asarray(self.au_max, xp.float32))

  def bounds(self, xp=jnp):
    """(lo, hi) of the normalised features, (K,) each."""
    mean, scale = self._arrays(xp)
    hi = xp.asarray(self.au_max, xp.float32)
    return (0.0 - mean) / scale, (hi - mean) / scale

  def stim_to_model(self, stim, xp=jnp):
    return (xp.asarray(stim, xp.float32) - self.stim_mean) / self.stim_std

  def expr_to_model(self, expr, xp=jnp):
    return (xp.asarray(expr, xp.float32) - self.expr_mean) / self.expr_std

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: dict) -> Normaliser:
    d = dict(d)
    for k in ("au_mean", "au_std", "au_max"):
      d[k] = tuple(float(x) for x in d[k])
    return cls(**d)


def to_tokens(frames, fs: int):
  """(B, T*fs, K) frames -> (B, T, fs*K) tokens (frame-major inside)."""
  b, n, k = frames.shape
  if n % fs:
    raise ValueError(f"{n} frames are not a whole number of {fs}-frame "
                     "tokens")
  return frames.reshape(b, n // fs, fs * k)


def from_tokens(tokens, fs: int):
  """(B, T, fs*K) tokens -> (B, T*fs, K) frames."""
  b, t, f = tokens.shape
  return tokens.reshape(b, t * fs, f // fs)


def token_bounds(norm: Normaliser, fs: int, xp=jnp):
  """(lo, hi), each (fs*K,): the per-frame bounds tiled over a token."""
  lo, hi = norm.bounds(xp)
  return xp.tile(lo, fs), xp.tile(hi, fs)


def stim_lookback(stim, fs: int, window: int, history: int):
  """Per-token stimulus features with look-back.

  Args:
    stim: (B, (history + window) * fs) normalised stimulus frames, oldest
      first; the last window * fs belong to the window's tokens.
    fs: frames per token.
    window: tokens in the window.
    history: tokens of look-back before each token.

  Returns:
    (B, window, (history + 1) * fs): token j's frames and those of the
    `history` tokens before it, oldest first.
  """
  b, n = stim.shape
  want = (history + window) * fs
  if n != want:
    raise ValueError(f"stimulus has {n} frames; a window needs {want} "
                     f"((history {history} + window {window}) x {fs})")
  tok = stim.reshape(b, history + window, fs)
  parts = [tok[:, i:i + window] for i in range(history + 1)]
  return jnp.concatenate(parts, axis=-1)
