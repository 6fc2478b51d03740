"""``--report_to X`` fails when the recipe is read, not after the model has loaded, when X's package is missing."""

from __future__ import annotations

import importlib.util

import pytest
import transformers.integrations.integration_utils as integrations

from vqathinker.cli import main
from vqathinker.training.configs import VQAGRPOConfig

CPU = dict(use_cpu=True, bf16=False)


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")
def test_a_backend_that_is_not_installed_fails_at_parse_time_in_one_line(capsys):
    argv = ["train", "--use_cpu", "true", "--bf16", "false", "--output_dir", "unused", "--report_to", "wandb"]
    assert main(argv) == 2  # no model named: it fails before anything would load
    err = capsys.readouterr().err
    assert err == (
        "vqathinker train: error: report_to ['wandb']: not installed here (pip install wandb); report to what "
        "is installed (tensorboard) with e.g. --report_to none\n"
    )

    assert main(["demo", "--report_to", "wandb"]) == 2  # the demo's recipe, overridden
    assert capsys.readouterr().err.startswith(
        "vqathinker demo: error: report_to ['wandb']: not installed here"
    )


def test_the_message_names_each_missing_package(tmp_path, monkeypatch):
    monkeypatch.setattr(integrations, "is_tensorboard_available", lambda: False)
    monkeypatch.setattr(integrations, "is_mlflow_available", lambda: False)
    with pytest.raises(ValueError) as error:
        VQAGRPOConfig(output_dir=str(tmp_path), report_to=["tensorboard", "mlflow"], **CPU)
    assert "report_to ['tensorboard', 'mlflow']: not installed here (pip install tensorboard mlflow)" in str(
        error.value
    )


def test_installed_backends_all_and_none_pass(tmp_path):
    assert VQAGRPOConfig(output_dir=str(tmp_path), report_to="tensorboard", **CPU).report_to == [
        "tensorboard"
    ]
    assert VQAGRPOConfig(output_dir=str(tmp_path), report_to="none", **CPU).report_to == []
    everything = VQAGRPOConfig(output_dir=str(tmp_path), report_to="all", **CPU).report_to
    assert everything == integrations.get_available_reporting_integrations()
