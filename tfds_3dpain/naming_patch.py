"""Lets TFDS accept dataset names that start with a digit, such as `3dpain`.

TFDS 4.9.10 registers a builder named `3dpain` and even builds it, but every
lookup by name (`tfds.builder`, `tfds.load`, `tfds.data_source`) first parses
the name with regexes that demand a leading letter, and fails with
"Parsing builder name string 3dpain failed". The regexes are private module
globals of `tensorflow_datasets.core.naming`, read at call time, so widening
them once, before the first lookup, is enough (stack.md §4).

Touching private names is fragile, which is why `pyproject.toml` pins
`tensorflow-datasets==4.9.10`: `apply()` checks that every name it patches
still exists with the expected stock value, and raises `TfdsNamingChanged`
(naming the TFDS version and what moved) instead of patching blindly.
"""

from __future__ import annotations

import re

import tensorflow_datasets as tfds
from tensorflow_datasets.core import naming

# TFDS's stock "name class" (a leading letter) and our widened one.
STOCK_NAME_CLASS = r"[a-zA-Z][\w]*"
NAME_CLASS = r"[a-zA-Z0-9]\w*"
# The private globals of `tensorflow_datasets.core.naming` the patch rewrites.
PATCHED_NAMES = (
    "_NAME_CLASS",
    "_NAME_CLASS_REG",
    "_NAME_REG",
    "_VAR_REGEX_MAPPING",
    "_VAR_DATASET",
)


class TfdsNamingChanged(RuntimeError):
  """TFDS's private naming regexes are not what the patch expects."""


def _fail(problem: str) -> TfdsNamingChanged:
  return TfdsNamingChanged(
      f"tfds_3dpain cannot register the digit-leading name '3dpain': {problem} "
      f"(tensorflow-datasets {tfds.__version__}; the patch was written for "
      "4.9.10, which pyproject.toml pins). Install tensorflow-datasets==4.9.10 "
      "or update tfds_3dpain/naming_patch.py for this TFDS version."
  )


def check_stock_internals() -> None:
  """Raises TfdsNamingChanged unless naming.py still looks like TFDS 4.9.10."""
  missing = [n for n in PATCHED_NAMES if not hasattr(naming, n)]
  if missing:
    raise _fail(f"tensorflow_datasets.core.naming lacks {missing}")
  if naming._NAME_CLASS != STOCK_NAME_CLASS:
    raise _fail(f"naming._NAME_CLASS is {naming._NAME_CLASS!r}")
  if STOCK_NAME_CLASS not in naming._NAME_REG.pattern:
    raise _fail("naming._NAME_REG no longer embeds naming._NAME_CLASS")
  dataset_regex = naming._VAR_REGEX_MAPPING.get(naming._VAR_DATASET, "")
  if STOCK_NAME_CLASS not in dataset_regex:
    raise _fail("naming._VAR_REGEX_MAPPING[DATASET] no longer uses it")


def is_applied() -> bool:
  """Whether TFDS name parsing accepts `3dpain` (patched or fixed upstream)."""
  try:
    naming.parse_builder_name_kwargs("3dpain/tiny:1.0.0")
  except ValueError:
    return False
  return naming.is_valid_dataset_name("3dpain")


def apply() -> None:
  """Widens TFDS's name regexes in place; idempotent.

  Raises:
    TfdsNamingChanged: TFDS's private names moved (see module docstring), or
      the patched regexes still reject `3dpain`.
  """
  if naming._NAME_CLASS == NAME_CLASS and is_applied():
    return
  check_stock_internals()
  naming._NAME_CLASS = NAME_CLASS
  naming._NAME_CLASS_REG = re.compile(rf"^{NAME_CLASS}$")
  naming._NAME_REG = re.compile(
      naming._NAME_REG.pattern.replace(STOCK_NAME_CLASS, NAME_CLASS)
  )
  naming._VAR_REGEX_MAPPING[naming._VAR_DATASET] = (
      rf"(?P<dataset_name>{NAME_CLASS})"
  )
  if not is_applied():
    raise _fail("the patched regexes still reject '3dpain'")
