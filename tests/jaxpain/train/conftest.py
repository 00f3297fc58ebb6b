"""Makes the tiny test model importable and registered for tests/train."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import tiny_model  # noqa: E402, F401  (registers model 'tiny')
