"""The TFDS naming patch: `3dpain` parses, and a TFDS change fails loudly."""

import pathlib
import re
import tomllib

import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.core import naming

import tfds_3dpain
from tfds_3dpain import naming_patch


def test_import_registers_3dpain_under_its_exact_name():
  assert "3dpain" in tfds.list_builders(with_community_datasets=False)
  assert tfds.builder_cls("3dpain") is tfds_3dpain.Builder
  assert tfds_3dpain.Builder.name == "3dpain"


def test_patched_regexes_parse_names_and_shard_files():
  name, kwargs = naming.parse_builder_name_kwargs("3dpain/tiny:1.0.0")
  assert str(name) == "3dpain"
  assert kwargs == {"config": "tiny", "version": "1.0.0"}
  assert naming.is_valid_dataset_name("3dpain")
  template = naming.ShardedFileTemplate(
      data_dir="/d", dataset_name="3dpain", split="train",
      filetype_suffix="array_record",
  )
  parsed = template.parse_filename_info(
      "3dpain-train.array_record-00003-of-00010"
  )
  assert parsed is not None and parsed.dataset_name == "3dpain"
  assert (parsed.shard_index, parsed.num_shards) == (3, 10)


def _restore_stock(monkeypatch):
  """Puts TFDS's stock regexes back for the duration of a test."""
  new, old = naming_patch.NAME_CLASS, naming_patch.STOCK_NAME_CLASS
  monkeypatch.setattr(naming, "_NAME_CLASS", old)
  monkeypatch.setattr(naming, "_NAME_CLASS_REG", re.compile(rf"^{old}$"))
  monkeypatch.setattr(naming, "_NAME_REG", re.compile(
      naming._NAME_REG.pattern.replace(new, old)))
  mapping = dict(naming._VAR_REGEX_MAPPING)
  mapping[naming._VAR_DATASET] = rf"(?P<dataset_name>{old})"
  monkeypatch.setattr(naming, "_VAR_REGEX_MAPPING", mapping)


def test_stock_tfds_rejects_3dpain_and_apply_fixes_it(monkeypatch):
  _restore_stock(monkeypatch)
  with pytest.raises(ValueError, match="Parsing builder name string 3dpain"):
    naming.parse_builder_name_kwargs("3dpain")
  naming_patch.apply()
  assert naming_patch.is_applied()
  naming_patch.apply()  # Idempotent.
  assert naming._NAME_CLASS == naming_patch.NAME_CLASS


@pytest.mark.parametrize("attr", ["_NAME_REG", "_VAR_REGEX_MAPPING"])
def test_missing_private_name_fails_loudly(monkeypatch, attr):
  _restore_stock(monkeypatch)
  monkeypatch.delattr(naming, attr)
  with pytest.raises(naming_patch.TfdsNamingChanged, match=attr) as err:
    naming_patch.apply()
  assert "tensorflow-datasets==4.9.10" in str(err.value)


def test_changed_name_class_fails_loudly(monkeypatch):
  _restore_stock(monkeypatch)
  monkeypatch.setattr(naming, "_NAME_CLASS", r"[a-z]+")
  with pytest.raises(naming_patch.TfdsNamingChanged, match="_NAME_CLASS"):
    naming_patch.apply()


def test_installed_tfds_is_the_version_pyproject_pins():
  # The patch edits private names of exactly one release; running another
  # one means the pin was bypassed and the checks above are all we have.
  root = pathlib.Path(__file__).resolve().parents[2]
  deps = tomllib.loads((root / "pyproject.toml").read_text())["project"][
      "dependencies"]
  (pin,) = [d for d in deps if d.startswith("tensorflow-datasets")]
  assert pin == f"tensorflow-datasets=={tfds.__version__}"
