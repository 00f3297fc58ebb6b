"""Fixtures of the `3dpain` builder tests (tests/tfds_3dpain)."""

import shutil

import pytest
import tensorflow_datasets as tfds

import tfds_3dpain
from tfds_3dpain import testing


@pytest.fixture(scope="module")
def official_fixture(tmp_path_factory):
  """A pristine fake release; copy it before changing anything."""
  return testing.write_official_fixture(tmp_path_factory.mktemp("release"))


@pytest.fixture
def release_copy(official_fixture, tmp_path):
  """A private copy of the fake release, safe to damage."""
  dst = tmp_path / "manual"
  shutil.copytree(official_fixture.root, dst)
  return dst


# `official` in-process: the pool start costs more than these tiny imports.
OFFICIAL_LOCAL = tfds_3dpain.ThreeDPainConfig(
    name="official_local", official=True, num_workers=0
)


def _prepare_official(manual_dir, data_dir, **kwargs):
  builder = tfds.builder(
      "3dpain", config=OFFICIAL_LOCAL, data_dir=str(data_dir)
  )
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(
          manual_dir=str(manual_dir), **kwargs
      )
  )
  return builder


@pytest.fixture
def prepare_official():
  """prepare(manual_dir, data_dir) builds `3dpain/official`; the builder."""
  return _prepare_official


@pytest.fixture
def official_local():
  """The in-process `official` config the builds above use."""
  return OFFICIAL_LOCAL
