"""UNBC readers on fabricated fixtures in both layouts, and their bad inputs."""

import os

import h5py
import numpy as np
import pytest

from synth import records
from tfds_3dpain.unbc_mcmaster import unbc, unbc_archive


def _same_table(a, b):
  np.testing.assert_array_equal(a.subject, b.subject)
  np.testing.assert_array_equal(a.subject_name, b.subject_name)
  np.testing.assert_allclose(a.au, b.au)
  np.testing.assert_allclose(a.pspi, b.pspi)
  for i in (0, len(a) // 2, len(a) - 1):
    np.testing.assert_array_equal(a.image(i), b.image(i))


def test_archive_layout_reads_back_the_fabricated_table(fab, archive_dir):
  # archive_dir is ".../UNBC-McMaster"; give its parent to test the
  # one-level-down discovery.
  parent = str(archive_dir.parent)
  assert unbc.detect_layout(parent) == "archive"
  got = unbc.load(parent)
  assert got.layout == "archive" and len(got) == len(fab) == 160
  _same_table(fab, got)
  np.testing.assert_array_equal(got.sequence, fab.sequence)
  np.testing.assert_array_equal(got.frame, fab.frame)
  assert got.stats["pspi_au_mismatch"] == 0
  assert got.stats["missing_landmarks"] == len(got)  # none written: counted


def test_hdf5_layout_reads_back_the_fabricated_table(fab, hdf5_dir):
  assert unbc.detect_layout(str(hdf5_dir)) == "hdf5"
  got = unbc.load(str(hdf5_dir))
  assert got.layout == "hdf5" and len(got) == len(fab)
  _same_table(fab, got)
  assert set(got.sequence) == {""}
  np.testing.assert_allclose(got.pspi, records.pspi(got.au))


def test_facs_file_parsing_rules(tmp_path):
  p = tmp_path / "f_facs.txt"
  p.write_text("   4.0000000e+00   3.0000000e+00   0.0000000e+00   0.0\n"
               "   1.2000000e+01   2.0000000e+00   0.0   0.0\n"
               "   4.3000000e+01   0.0000000e+00   0.0   0.0\n")
  au = unbc_archive.parse_facs_file(str(p))
  # AU12 is not a PSPI AU; AU43 is present with intensity 0 -> 1.
  np.testing.assert_array_equal(au, [3, 0, 0, 0, 0, 1])
  (tmp_path / "e_facs.txt").write_text("")
  assert not unbc_archive.parse_facs_file(str(tmp_path / "e_facs.txt")).any()


def test_landmark_crop(tmp_path, fab):
  root = tmp_path / "arch"
  unbc_archive.write_archive(fab.select(np.arange(8)), str(root))
  t = unbc_archive.read_archive(str(root))
  rel = os.path.join(t.subject_name[0], t.sequence[0])
  lm_dir = root / "AAM_landmarks" / rel
  lm_dir.mkdir(parents=True)
  stem = t.key[0].split("/")[-1]
  (lm_dir / f"{stem}_aam.txt").write_text("10 10\n18 12\n14 18\n")
  got = unbc_archive.read_archive(str(root))
  crop = got.image(0)
  # 8 px landmark box grown by 25% per side -> 12 px square.
  assert crop.shape == (12, 12, 3)
  assert got.stats["missing_landmarks"] == 7
  with pytest.raises(unbc.UnbcFormatError, match="crop='landmarks'"):
    unbc_archive.read_archive(str(root), crop="landmarks")


def test_archive_frames_without_labels_are_counted(tmp_path, fab):
  root = tmp_path / "arch"
  unbc_archive.write_archive(fab.select(np.arange(4)), str(root))
  victim = next((root / "Frame_Labels" / "PSPI").rglob("*_facs.txt"))
  victim.unlink()
  got = unbc_archive.read_archive(str(root))
  assert len(got) == 3 and got.stats["missing_pspi"] == 1


def _copy_hdf5(src, dst, drop=(), edit=None):
  os.makedirs(dst, exist_ok=True)
  for name in (unbc.FRAMES_FILE, unbc.ANNOTATIONS_FILE):
    with h5py.File(os.path.join(src, name)) as fi, \
        h5py.File(os.path.join(dst, name), "w") as fo:
      for k in fi:
        if k not in drop:
          fo[k] = fi[k][()]
      if edit and name == unbc.ANNOTATIONS_FILE:
        edit(fo)
  return dst


def test_missing_hdf5_keys_are_named(hdf5_dir, tmp_path):
  bad = _copy_hdf5(str(hdf5_dir), str(tmp_path / "bad"),
                   drop=("label_AU_9", "subject_name"))
  with pytest.raises(unbc.UnbcFormatError,
                     match=r"lacks key\(s\) \['subject_name', 'label_AU_9'\]"):
    unbc.load(bad)


def test_nan_labels_counted_and_policies(hdf5_dir, tmp_path):
  def edit(f):
    p = f["label_pspi"][()]
    p[[3, 7]] = np.nan
    del f["label_pspi"]
    f["label_pspi"] = p
    a = f["label_AU_4"][()]
    a[5] = np.nan
    del f["label_AU_4"]
    f["label_AU_4"] = a

  d = _copy_hdf5(str(hdf5_dir), str(tmp_path / "nan"), edit=edit)
  got = unbc.load(d)
  assert len(got) == 158 and got.stats["dropped_nan_pspi"] == 2
  assert got.stats["nan_au"]["AU4"] == 1
  assert np.isfinite(got.au).all()
  zero = unbc.load(d, nan_pspi="zero")
  assert len(zero) == 160 and zero.stats["nan_pspi"] == 2
  with pytest.raises(unbc.UnbcFormatError, match="2 frame"):
    unbc.load(d, nan_pspi="error")


def test_per_frame_au_arrays_use_nanmax_and_orphans_dropped(hdf5_dir, tmp_path):
  def edit(f):
    a = f["label_AU_6"][()]
    arr = np.stack([a, np.full_like(a, np.nan), a - 1], axis=1)
    arr[0] = [np.nan, np.nan, np.nan]
    del f["label_AU_6"]
    f["label_AU_6"] = arr
    idx = f["index"][()]
    idx[-1] = 10_000  # points at no frame
    del f["index"]
    f["index"] = idx

  d = _copy_hdf5(str(hdf5_dir), str(tmp_path / "arr"), edit=edit)
  got = unbc.load(d)
  ref = unbc.load(str(hdf5_dir))
  assert got.stats["dropped_no_frame"] == 1 and len(got) == 159
  assert got.stats["nan_au"]["AU6"] == 1
  row0 = np.nonzero(got.key == ref.key[np.argmax(ref.rows == 0)])[0][0]
  assert got.au[row0, 1] == 0.0


def test_unknown_folder_explains_both_layouts(tmp_path):
  with pytest.raises(unbc.UnbcFormatError, match="neither UNBC layout"):
    unbc.detect_layout(str(tmp_path))
  with pytest.raises(unbc.UnbcFormatError, match="does not exist"):
    unbc.load(str(tmp_path / "nope"))


def test_bad_subject_name():
  with pytest.raises(unbc.UnbcFormatError, match="042-ll042"):
    unbc.subject_id(b"ll042")
  assert unbc.subject_id(b"042-ll042") == 42
