"""Shared fixtures: a tiny random InternVL checkpoint built once per test session."""

from __future__ import annotations

import pytest

from vqathinker.model.tiny import make_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """Folder of a tiny InternVL checkpoint (seed 0) loadable by ``load_model_and_processor``."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny_internvl"), seed=0)
