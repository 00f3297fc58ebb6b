"""Fixtures of tests/eval: one fabricated UNBC table in both on-disk layouts.

Built once per session (10 subjects x 2 sequences x 8 frames of 32x32) so
the reader, fold, builder and runner tests share the cost.
"""

import pytest

from jaxpain.eval import fabricate, unbc, unbc_archive


@pytest.fixture(scope="session")
def fab():
  return fabricate.make_unbc(n_subjects=10, n_sequences=2, n_frames=8,
                             size=32, seed=0)


@pytest.fixture(scope="session")
def archive_dir(fab, tmp_path_factory):
  root = tmp_path_factory.mktemp("unbc_archive") / "UNBC-McMaster"
  unbc_archive.write_archive(fab, str(root))
  return root


@pytest.fixture(scope="session")
def hdf5_dir(fab, tmp_path_factory):
  root = tmp_path_factory.mktemp("unbc_hdf5")
  unbc.write_hdf5(fab, str(root))
  return root
