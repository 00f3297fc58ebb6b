"""`3dpain`: synthetic pain faces (Pain in 3D, arXiv 2509.16727) for TFDS.

The layout follows `tfds new` (README.md, CITATIONS.bib, TAGS.txt next to
this file), adapted to a name that starts with a digit: the module has an
importable name and the class sets `name = '3dpain'`; the package imports
the TFDS naming patch before this module (style.md §3).

What this builder adds to a stock GeneratorBasedBuilder, and why:
- ArrayRecord is the default format even with `data_dir=` (TFDS would pick
  TFRecord there and need TensorFlow to write it; stack.md §5).
- Work is done per identity, in a local process pool, or as a Beam
  PTransform when the download config carries Beam options (runner.py).
- Images stored as the config's `storage` says (size, JPEG or raw uint8);
  raw shards are rewritten without zstd (formats.rewrite_uncompressed).
- After the shards are written: the identity-to-record index (index.py),
  the TFRecord twin when TensorFlow is installed, and the completeness
  marker (formats.py), all inside TFDS's temporary folder, before the rename.
- A folder that fails the completeness check is never read and never
  deleted implicitly: reading or preparing it raises DamagedBuildError
  (one line, with the rebuild command); only a download mode that
  overwrites (`tfds build --overwrite`) replaces it.
- `_as_dataset` reads the TFRecord twin, so `tfds.load` gives tf.data from
  the same folder that `tfds.data_source` reads as ArrayRecord.

Keep `os` and `open` out of this module: DatasetBuilderTestCase replaces them
here to catch non-gfile I/O.
"""

from __future__ import annotations

import functools
import logging

import tensorflow_datasets as tfds
from etils import epath

from synth import records
from tfds_3dpain import (
  configs,
  features,
  formats,
  index,
  official,
  official_layout,
  runner,
  sequences,
  splits,
  synthetic,
)

FileFormat = tfds.core.FileFormat
HOMEPAGE = "https://arxiv.org/abs/2509.16727"
MAX_LOGGED_NOTES = 20


def _restore_alternative_formats(info: tfds.core.DatasetInfo) -> None:
  """Works around TFDS 4.9.10 forgetting alternative formats on reload.

  Code builders restore `alternative_file_formats` into the proto but not
  into `info._alternative_file_formats`, which is what readers consult.
  """
  for value in info.as_proto.alternative_file_formats:
    fmt = FileFormat.from_value(value)
    if fmt not in info._alternative_file_formats:
      info._alternative_file_formats.append(fmt)


class Builder(tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for `3dpain` (see the module docstring and README.md)."""

  name = "3dpain"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {
      "1.0.0": "First release: synthetic full/small/tiny and the official "
      "import; ArrayRecord with a TFRecord twin; identity index.",
  }
  BUILDER_CONFIGS = configs.BUILDER_CONFIGS
  DEFAULT_BUILDER_CONFIG_NAME = "full"
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Only the `official` config reads the manual folder; the others generate.
Download the 3D-Pain release (Hugging Face dataset SoroushMehraban/3D-Pain),
extract its shards and place them as:

  <manual_dir>/pain_faces/annotations/<subject>_pain_<k>_annotations.json
  <manual_dir>/pain_faces/meshes_inpainted/<subject>_pain_<k>_textured_view_<vvv>_inpainted.jpg
  <manual_dir>/pain_faces/meshes_inpainted/<subject>_neutral_textured_view_<vvv>_inpainted.jpg
  <manual_dir>/pain_faces/heatmaps/<subject>_pain_<k>_heatmap.png   (optional)
  <manual_dir>/uniform_data_70_20_10_split.csv                      (optional)

The split CSV comes from the TaatiTeam/Pain-in-3D repository
(data/splits/). Pass the folder with
tfds.download.DownloadConfig(manual_dir=...) or `tfds build --manual_dir`.
"""

  def __init__(self, *, file_format=None, **kwargs):
    super().__init__(file_format=file_format, **kwargs)
    _restore_alternative_formats(self.info)
    prepared = (self.data_path / "dataset_info.json").exists()
    if file_format is None and not prepared:
      self.info.set_file_format(FileFormat.ARRAY_RECORD, override=True)

  def is_prepared(self) -> bool:
    if not self.data_path.exists():
      return False
    return super().is_prepared() and (
        formats.incomplete_reason(self.data_path) is None
    )

  def _check_not_damaged(self) -> None:
    """DamagedBuildError if data_path exists but fails the marker check."""
    reason = formats.incomplete_reason(self.data_path)
    if reason is not None:
      raise formats.damaged_build_error(
          self.name, self.builder_config.name, self.data_path,
          self.data_dir_root, reason)

  def download_and_prepare(self, *, download_config=None, **kwargs):
    """As TFDS; a damaged folder is only replaced by an overwriting mode."""
    mode = download_config.download_mode if download_config else None
    if not (mode and tfds.download.GenerateMode(mode).overwrite_dataset):
      self._check_not_damaged()
    super().download_and_prepare(download_config=download_config, **kwargs)

  def as_data_source(self, *args, **kwargs):
    """As TFDS; DamagedBuildError instead of reading a damaged folder."""
    self._check_not_damaged()
    return super().as_data_source(*args, **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    if cfg.sequences is not None:
      return sequences.dataset_info(self, cfg.sequences)
    if cfg.official:
      feats = features.official_features(cfg.storage)
      spec = None
    else:
      feats = features.synthetic_features(cfg.synth.resolution, cfg.storage)
      spec = cfg.synth.to_dict()
    return self.dataset_info_from_configs(
        features=feats,
        supervised_keys=("image", "pspi"),
        homepage=HOMEPAGE,
        metadata=tfds.core.MetadataDict(
            au_names=list(records.AU_NAMES),
            synth_config=spec,
            split_salt=configs.SPLIT_SALT,
            image_storage=cfg.storage.to_dict(),
        ),
    )

  # ----------------------------------------------------------- generation

  def _download_and_prepare(self, dl_manager, download_config):
    self._use_beam = bool(
        download_config.beam_options or download_config.beam_runner
    )
    self._notes = []
    synthetic_cfg = not self.builder_config.official
    workers = runner.UnitRunner(
        self.builder_config.num_workers,
        # Rendering never runs in this process (synthetic.py explains).
        in_process=not synthetic_cfg,
        initializer=synthetic.mark_render_process if synthetic_cfg else None,
    )
    with workers as self._runner:
      super()._download_and_prepare(dl_manager, download_config)
    self._finish_build()

  def _split_generators(self, dl_manager):
    if self.builder_config.official:
      fn, by_split = self._official_units(dl_manager)
    elif self.builder_config.sequences is not None:
      fn, by_split = sequences.split_units(self.builder_config.sequences)
    else:
      spec = self.builder_config.synth
      fn = functools.partial(synthetic.identity_examples, spec,
                             storage=self.builder_config.storage)
      by_split = splits.assign(
          list(range(spec.num_identities)), configs.SPLIT_SALT
      )
    self._runner.cap(max(len(units) for units in by_split.values()))
    return {
        name: self._generate_examples(fn, units)
        for name, units in by_split.items()
        if units
    }

  def _generate_examples(self, fn, units):
    """A generator of examples, or a Beam PTransform when Beam is asked for.

    Not a generator function itself, so that it can return either.
    """
    if self._use_beam:
      return runner.beam_transform(fn, units)
    return self._runner.examples(fn, units, self._notes)

  def _official_units(self, dl_manager):
    try:
      manual_dir = epath.Path(dl_manager.manual_dir)
    except AssertionError:  # TFDS: none given, absent or empty
      where = getattr(dl_manager, "_manual_dir", None) or "(none given)"
      raise official_layout.ManualDirError(
          f"the manual folder {where} does not exist or is empty: the "
          "`official` config imports the released 3D-Pain; extract it as "
          "<manual_dir>/pain_faces/annotations/ and pain_faces/"
          "meshes_inpainted/ (and pain_faces/heatmaps/) and pass the folder "
          "as `tfds build --manual_dir` (tfds_3dpain/README.md)"
      ) from None
    scan = official_layout.scan(manual_dir, self.builder_config.split_csv)
    if scan.split_csv is not None:
      by_split = official_layout.assign_csv_splits(scan)
      source = f"released split file {scan.split_csv.name}"
    else:
      ids = splits.assign(sorted(scan.units), configs.SPLIT_SALT)
      by_split = {k: [scan.units[i] for i in v] for k, v in ids.items()}
      source = "70/20/10 by identity hash (no split CSV found)"
    logging.info("3dpain official: splits from %s", source)
    self._notes.extend(scan.notes)
    meta = self.info.metadata
    meta.update(split_source=source, has_heatmaps=any(
        u.expect_heatmaps for u in scan.units.values()))
    meta["pspi_differs_from_aus"] = scan.pspi_mismatches
    if scan.pspi_mismatches:
      logging.warning(
          "3dpain official: %d annotations store a PSPI that differs from "
          "their AUs (kept as stored, like the released loader): %s",
          len(scan.pspi_mismatches), scan.pspi_mismatches[:MAX_LOGGED_NOTES],
      )
    fn = functools.partial(official.identity_examples,
                           storage=self.builder_config.storage)
    return fn, by_split

  def _finish_build(self) -> None:
    """Index, TFRecord twin, skipped-file report, then the marker (last)."""
    split_infos = list(self.info.splits.values())
    if self.info.file_format == FileFormat.ARRAY_RECORD:
      if not self.builder_config.storage.compressed:
        formats.rewrite_uncompressed(
            [p for s in split_infos for p in s.filepaths])
      if self.builder_config.sequences is None:  # Clips hold their neutral.
        index.build({s.name: s.filepaths for s in split_infos},
                    self.data_path)
      if formats.tensorflow_available():
        formats.write_tfrecord_twin(split_infos)
        if FileFormat.TFRECORD not in self.info.alternative_file_formats:
          self.info.add_alternative_file_format(FileFormat.TFRECORD)
    self._report_notes()
    formats.write_marker(self.data_path)

  def _report_notes(self) -> None:
    notes = [f"{name}: {reason}" for name, reason in self._notes]
    self.info.metadata["skipped_files"] = notes
    if notes:
      logging.warning(
          "3dpain/%s: %d input files were skipped (full list in "
          "metadata.json, key skipped_files); first ones: %s",
          self.builder_config.name, len(notes), notes[:MAX_LOGGED_NOTES],
      )

  # -------------------------------------------------------------- reading

  def _as_dataset(self, split, decoders=None, read_config=None,
                  shuffle_files=False):
    """Reads the TFRecord twin: tf.data cannot read ArrayRecord."""
    self._check_not_damaged()
    info = self.info
    if info.file_format == FileFormat.ARRAY_RECORD:
      if FileFormat.TFRECORD not in info.alternative_file_formats:
        raise NotImplementedError(
            f"{self.data_path} was prepared without TensorFlow, so it has no "
            "TFRecord copy for tf.data. Use tfds.data_source('3dpain', ...), "
            "or install tensorflow and prepare it again."
        )
      if FileFormat.ARRAY_RECORD not in info.alternative_file_formats:
        info._alternative_file_formats.append(FileFormat.ARRAY_RECORD)
      # Switches the split file templates too (stack.md §5, step 4).
      info.set_file_format(
          FileFormat.TFRECORD, override=True, override_if_initialized=True
      )
    return super()._as_dataset(
        split=split, decoders=decoders, read_config=read_config,
        shuffle_files=shuffle_files,
    )
