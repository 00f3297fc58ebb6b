"""Fixtures of the synth geometry tests: the head is parsed once per session."""

import pytest

from synth.head import load_head_model
from synth.rig import AURig


@pytest.fixture(scope="session")
def head():
  return load_head_model("makehuman")


@pytest.fixture(scope="session")
def au_rig(head):
  return AURig(head)
