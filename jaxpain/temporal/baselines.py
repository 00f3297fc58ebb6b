"""Non-generative baselines of PainDiffusion's evaluation (§G.5).

Each takes the test stimulus segments (N, T) and returns S samples of AU
sequences (S, N, T, K) drawn from the TRAINING recordings:

  nearest     the S training windows whose stimulus curves are closest
              (L2) to the test curve: retrieval by stimulus
  random      S random training windows
  mean_face   the training mean AU vector at every frame (S copies)

The fourth baseline, full-sequence diffusion without forcing, is a trained
model (configs/temporal_fullseq.py) sampled like ours.
"""

from __future__ import annotations

import numpy as np

from jaxpain.temporal import data as data_lib


def _windows(train: data_lib.Recordings, length: int, stride: int):
  """(index (M, 2), stimulus curves (M, length)) of all training windows."""
  spec = data_lib.WindowSpec(length, 0, stride)
  index = data_lib.window_starts(train.num, train.frames, spec)
  stim = np.asarray(train.stimulus, np.float32)
  curves = stim[index[:, :1], index[:, 1:] + np.arange(length)[None]]
  return index, curves


def _gather(train: data_lib.Recordings, index: np.ndarray, length: int):
  au = np.asarray(train.au, np.float32)
  return au[index[..., :1], index[..., 1:] + np.arange(length)]


def nearest(train: data_lib.Recordings, stim: np.ndarray, samples: int,
            stride: int = 5) -> np.ndarray:
  """Retrieval by stimulus curve: the S nearest windows' AUs."""
  stim = np.asarray(stim, np.float32)
  n, t = stim.shape
  index, curves = _windows(train, t, stride)
  d = (np.square(stim).sum(1)[:, None] - 2 * stim @ curves.T
       + np.square(curves).sum(1)[None])  # (N, M)
  best = np.argsort(d, axis=1)[:, :samples]  # (N, S)
  out = _gather(train, index[best.T], t)  # (S, N, T, K)
  return out


def random_window(train: data_lib.Recordings, stim: np.ndarray, samples: int,
                  seed: int = 0) -> np.ndarray:
  """S random training windows per test segment."""
  n, t = np.asarray(stim).shape
  index, _ = _windows(train, t, 1)
  pick = np.random.default_rng(seed).integers(0, len(index), (samples, n))
  return _gather(train, index[pick], t)


def mean_face(train: data_lib.Recordings, stim: np.ndarray, samples: int
              ) -> np.ndarray:
  """The training mean AU vector, held for every frame."""
  n, t = np.asarray(stim).shape
  mean = np.asarray(train.au, np.float64).reshape(-1, train.au.shape[-1])
  mean = mean.mean(0).astype(np.float32)
  return np.broadcast_to(mean, (samples, n, t, mean.shape[0])).copy()


BASELINES = {"nearest": nearest, "random": random_window,
             "mean_face": mean_face}
