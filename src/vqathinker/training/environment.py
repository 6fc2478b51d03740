"""What this machine offers a training run: a bf16 device, the packages of the ``report_to`` backends.

:class:`~vqathinker.training.configs.VQAGRPOConfig` checks both when a recipe is read, so that a missing one
stops the run in one line before any model loads.
"""

from __future__ import annotations

REPORT_BACKENDS = {
    "azure_ml": ("is_azureml_available", "azureml-core"),
    "clearml": ("is_clearml_available", "clearml"),
    "codecarbon": ("is_codecarbon_available", "codecarbon"),
    "comet_ml": ("is_comet_available", "comet_ml"),
    "dagshub": ("is_dagshub_available", "dagshub"),
    "dvclive": ("is_dvclive_available", "dvclive"),
    "flyte": ("is_flytekit_available", "flytekit"),
    "kubeflow": ("is_kubeflow_available", "kubeflow"),
    "mlflow": ("is_mlflow_available", "mlflow"),
    "neptune": ("is_neptune_available", "neptune"),
    "swanlab": ("is_swanlab_available", "swanlab"),
    "tensorboard": ("is_tensorboard_available", "tensorboard"),
    "trackio": ("is_trackio_available", "trackio"),
    "wandb": ("is_wandb_available", "wandb"),
}
"""``report_to`` backend → (transformers' availability check, the package to install)."""


def check_report_backends(report_to: list[str]) -> None:
    """Fail when a ``report_to`` backend's package is missing, instead of after the model has loaded."""
    import transformers.integrations.integration_utils as integrations

    missing = {
        name: REPORT_BACKENDS[name][1]
        for name in report_to
        if name in REPORT_BACKENDS and not getattr(integrations, REPORT_BACKENDS[name][0])()
    }
    if missing:
        raise ValueError(
            f"report_to {list(missing)}: not installed here (pip install {' '.join(missing.values())}); "
            f"report to what is installed ({' '.join(integrations.get_available_reporting_integrations()) or 'none'})"
            " with e.g. --report_to none"
        )


def bf16_device_available() -> bool:
    """Whether transformers can train in bf16 here without ``use_cpu`` (a CUDA GPU with bf16, or XLA)."""
    from transformers.utils import is_torch_bf16_gpu_available, is_torch_xla_available

    return is_torch_bf16_gpu_available() or is_torch_xla_available()
