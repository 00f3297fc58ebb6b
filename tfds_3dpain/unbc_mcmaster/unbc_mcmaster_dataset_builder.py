"""`unbc_mcmaster`: the UNBC-McMaster Shoulder Pain archive, from a manual dir.

The archive is licensed (request it from its authors), so the builder only
reads the user's copy from `manual_dir`, in either layout that
the readers of this package (`unbc`, `unbc_archive`) understand (the released HDF5 files, or the original
Images/ + Frame_Labels/ folders).

Splits are the 5 subject-disjoint cross-validation folds, `fold0`..`fold4`;
each holds the frames of that fold's held-out subjects. Train on the others
with TFDS's split algebra, e.g. fold 0:

    tfds.data_source('unbc_mcmaster', split='fold1+fold2+fold3+fold4')
    tfds.data_source('unbc_mcmaster', split='fold0')  # test

The folds come from `UNBC_CVFolds*.hdf5` in `manual_dir` when present (the
released fold-file layout), otherwise from `folds.make_folds` (seed 0); `info.metadata['folds']` records which subjects each fold holds.

Feature names match `3dpain` where the meaning is the same (`image`, `au`,
`pspi`, `identity`, `is_neutral`), so the same grain pipeline reads both.
Images are written as PNG without TensorFlow, so `download_and_prepare`
and `tfds.data_source` work in a TF-free environment.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import tensorflow_datasets as tfds

from tfds_3dpain.unbc_mcmaster import folds as folds_lib
from tfds_3dpain.unbc_mcmaster import unbc

_AU_NAMES = ("AU4", "AU6", "AU7", "AU9", "AU10", "AU43")


@dataclasses.dataclass
class UnbcConfig(tfds.core.BuilderConfig):
  """Stored image side in pixels (faces are resized to a square)."""

  image_size: int = 224


def _configs():
  return [
      UnbcConfig(name="px224", image_size=224,
                 description="224x224 faces, the ViTPain input size."),
      UnbcConfig(name="px112", image_size=112,
                 description="112x112 faces, for small models."),
      UnbcConfig(name="px32", image_size=32,
                 description="32x32 faces, for tests and CPU smoke runs."),
  ]


class Builder(tfds.core.GeneratorBasedBuilder):
  """UNBC-McMaster Shoulder Pain Expression Archive (manual download)."""

  name = "unbc_mcmaster"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: 5 subject-disjoint folds."}
  BUILDER_CONFIGS = _configs()
  DEFAULT_CONFIG_NAME = "px224"
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Request UNBC-McMaster from its authors (Lucey et al., FG 2011,
  doi:10.1109/FG.2011.5771462) and place in `manual_dir` EITHER
    - the released HDF5 files `frames_unbc*.hdf5` and `annotations_unbc*.hdf5`
      (optionally `UNBC_CVFolds*.hdf5` to fix the folds), OR
    - the archive folders `Images/` and `Frame_Labels/` (`Frame_Labels/PSPI`,
      `Frame_Labels/FACS`; `AAM_landmarks/` enables face cropping), possibly
      inside one top folder.
  """

  def __init__(self, *, file_format=None, **kwargs):
    super().__init__(file_format=file_format, **kwargs)
    # tfds.data_source(name, data_dir=...) would default to TFRecord, which
    # needs TensorFlow to write; random access wants ArrayRecord anyway.
    if file_format is None and not self.is_prepared():
      self.info.set_file_format("array_record", override=True)

  def _info(self) -> tfds.core.DatasetInfo:
    s = self.builder_config.image_size
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(s, s, 3),
                                         encoding_format="png"),
            "au": tfds.features.Tensor(shape=(6,), dtype=np.float32,
                                       doc=f"AU intensities {_AU_NAMES}"),
            "pspi": tfds.features.Scalar(np.float32, doc="PSPI, 0..16"),
            "identity": tfds.features.Scalar(np.int32, doc="subject id"),
            "subject_name": tfds.features.Text(),
            "sequence": tfds.features.Text(doc="'' in the HDF5 layout"),
            "frame": tfds.features.Scalar(np.int32),
            "is_neutral": tfds.features.Scalar(np.bool_, doc="PSPI == 0"),
            "is_sequence_start": tfds.features.Scalar(
                np.bool_, doc="first frame of its sequence (label-free)"),
        }),
        supervised_keys=("image", "pspi"),
        homepage="https://doi.org/10.1109/FG.2011.5771462",
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    root = str(dl_manager.manual_dir)
    data = unbc.load(root)
    folds, fold_source = folds_lib.for_data(data, root)
    self.info.metadata.update({
        "layout": data.layout,
        "fold_source": fold_source,
        "folds": [{"train_subjects": list(f.train_subjects),
                   "test_subjects": list(f.test_subjects)} for f in folds],
        "read_stats": _jsonable(data.stats),
    })
    starts = data.sequence_starts()
    return {
        f"fold{f.index}": self._generate_examples(data, starts,
                                                  f.test_subjects)
        for f in folds
    }

  def _generate_examples(self, data, starts, subjects):
    size = self.builder_config.image_size
    for i in np.nonzero(np.isin(data.subject, subjects))[0]:
      yield str(data.key[i]), {
          "image": _png(data.image(i), size),
          "au": data.au[i].astype(np.float32),
          "pspi": np.float32(data.pspi[i]),
          "identity": np.int32(data.subject[i]),
          "subject_name": str(data.subject_name[i]),
          "sequence": str(data.sequence[i]),
          "frame": np.int32(data.frame[i]),
          "is_neutral": bool(data.pspi[i] == 0),
          "is_sequence_start": bool(starts[i]),
      }


def _png(img: np.ndarray, size: int) -> bytes:
  """Resize (aspect not kept, like the released loader) and PNG-encode."""
  from PIL import Image  # noqa: PLC0415

  im = Image.fromarray(np.asarray(img, np.uint8))
  if im.size != (size, size):
    im = im.resize((size, size), Image.BILINEAR)
  buf = io.BytesIO()
  im.save(buf, format="PNG", compress_level=1)
  return buf.getvalue()


def _jsonable(x):
  if isinstance(x, dict):
    return {str(k): _jsonable(v) for k, v in x.items()}
  if isinstance(x, np.generic):
    return x.item()
  return x
