"""The end-to-end benchmarks' data: a fake release, built once and cached.

The fake release (`tfds_3dpain.testing`) has the released layout: q90 JPEG
faces (random pixels, so larger and slower to decode than real faces), JSON
labels and a split CSV, imported by the real `3dpain/official` builder to
ArrayRecord. It stands in for data nothing may download.
"""

from __future__ import annotations

import os

NAME = '3dpain/official'


def prepare_fixture(data_dir: str, size: int, identities: int) -> str:
  """Builds `3dpain/official` from a fake release (cached); its data_dir.

  Args:
    data_dir: cache folder; the build lands in a subfolder per size and
      identity count, reused when already prepared.
    size: image side of the fake JPEGs.
    identities: train identities (plus one each for validation and test).

  Returns:
    The TFDS data_dir that holds the prepared `3dpain/official`.
  """
  import tensorflow_datasets as tfds

  import tfds_3dpain  # noqa: F401  (registers 3dpain)
  from tfds_3dpain import testing
  root = os.path.join(data_dir, f'fixture_{size}px_{identities}ids')
  builder = tfds.builder(NAME, data_dir=os.path.join(root, 'd'))
  if not builder.is_prepared():
    manual = os.path.join(root, 'manual')
    if not os.path.isdir(manual):
      testing.write_official_fixture(
        manual + '.tmp', csv_splits=(0,) * identities + (1, 2), size=size,
        heatmaps=False)
      os.replace(manual + '.tmp', manual)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=manual))
  return os.path.join(root, 'd')
