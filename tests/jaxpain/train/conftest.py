"""Registers the tiny test model (model name 'tiny') for tests/jaxpain/train."""

from tests.jaxpain.train import tiny_model  # noqa: F401  (registers 'tiny')
