"""A restricted unpickler for model files such as FLAME's `generic_model.pkl`.

`pickle.load` can run arbitrary code, and model files come from elsewhere. The
unpickler here resolves only a short allowlist of globals: numpy's array
reconstruction, and stand-ins for chumpy's `Ch` and scipy's sparse matrices
(FLAME2020 pickles store arrays as chumpy objects and `J_regressor` as a
`scipy.sparse.csc_matrix`). The stand-ins only record their pickled state;
`to_numpy` turns them into plain arrays. Anything else is rejected with an
error naming the global, before any object of it exists.
"""

from __future__ import annotations

import _compat_pickle
import copyreg
import pickle

import numpy as np

try:  # numpy >= 2
  from numpy._core import multiarray as _multiarray
except ImportError:  # numpy 1.x
  from numpy.core import multiarray as _multiarray


class UnsafePickleError(pickle.UnpicklingError):
  """The file references a global outside the allowlist."""


class ChumpyArray:
  """Stand-in for `chumpy.ch.Ch`: keeps the pickled state, runs nothing."""

  def __setstate__(self, state):
    self.state = state

  def to_numpy(self) -> np.ndarray:
    """The wrapped array (a `Ch` built from an array stores it as 'x')."""
    state = self.state if isinstance(self.state, dict) else {}
    for key in ("x", "r"):
      if isinstance(state.get(key), np.ndarray):
        return state[key]
    raise ValueError(
        "a chumpy object in the model file is not a plain array (state keys "
        f"{sorted(state)}); re-save the model with numpy arrays (npz)")


class SparseMatrix:
  """Stand-in for scipy CSC/CSR matrices: keeps the state, densifies."""

  format = "csc"

  def __setstate__(self, state):
    self.state = state

  def to_numpy(self) -> np.ndarray:
    s = self.state
    shape = tuple(s.get("_shape") or s.get("shape"))
    data, indices, indptr = s["data"], s["indices"], s["indptr"]
    out = np.zeros(shape, np.float64)
    lengths = np.diff(indptr)
    major = np.repeat(np.arange(len(lengths)), lengths)
    if self.format == "csc":
      np.add.at(out, (indices, major), data)
    else:
      np.add.at(out, (major, indices), data)
    return out


class _CsrMatrix(SparseMatrix):
  format = "csr"


def _safe_reconstructor(cls, base, state):
  """copyreg._reconstructor for allowlisted classes only (protocol 0/1)."""
  if cls not in (ChumpyArray, SparseMatrix, _CsrMatrix) or base is not object:
    raise UnsafePickleError(f"refusing to reconstruct {cls!r}")
  return copyreg._reconstructor(cls, base, state)


def _latin1_encode(text, encoding="latin1"):
  """codecs.encode as protocol-2 pickles from Python 3 use it for bytes."""
  if encoding.lower().replace("-", "") != "latin1":
    raise UnsafePickleError(f"refusing codecs.encode with {encoding!r}")
  return text.encode("latin1")


_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
_ALLOWED = {
    **{(m, "_reconstruct"): _multiarray._reconstruct
       for m in _NUMPY_MODULES},
    **{(m, "scalar"): _multiarray.scalar for m in _NUMPY_MODULES},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("chumpy.ch", "Ch"): ChumpyArray,
    ("scipy.sparse.csc", "csc_matrix"): SparseMatrix,
    ("scipy.sparse._csc", "csc_matrix"): SparseMatrix,
    ("scipy.sparse.csr", "csr_matrix"): _CsrMatrix,
    ("scipy.sparse._csr", "csr_matrix"): _CsrMatrix,
    ("copyreg", "_reconstructor"): _safe_reconstructor,
    ("builtins", "object"): object,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("builtins", "bytearray"): bytearray,
    ("_codecs", "encode"): _latin1_encode,
}


class RestrictedUnpickler(pickle.Unpickler):
  """Unpickler resolving only the allowlisted globals."""

  def find_class(self, module: str, name: str):
    # Python 2 names (__builtin__, copy_reg): the base class maps them in its
    # own find_class, which this override replaces.
    if (module, name) in _compat_pickle.NAME_MAPPING:
      module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    try:
      return _ALLOWED[(module, name)]
    except KeyError:
      raise UnsafePickleError(
          f"the model file references {module}.{name}, which is not allowed "
          "(only numpy arrays, chumpy Ch arrays and scipy sparse matrices "
          "are); refusing to load it. Convert the model to .npz if it is "
          "trusted.") from None


def load(path: str):
  """Loads a pickle with the allowlist (Python 2 pickles: latin1 strings)."""
  with open(path, "rb") as fh:
    return RestrictedUnpickler(fh, encoding="latin1").load()


def to_numpy(value) -> np.ndarray:
  """Stand-ins and array-likes -> np.ndarray."""
  if isinstance(value, ChumpyArray | SparseMatrix):
    return value.to_numpy()
  return np.asarray(value)
