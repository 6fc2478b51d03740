"""``vqathinker patch-checkpoint``: install our modeling file into a remote-code checkpoint, and revert it."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from tests.remote_checkpoint import FIXTURES, REMOTE_FILES
from vqathinker.cli import main as cli_main
from vqathinker.model.loading import load_model_and_processor
from vqathinker.model.patching import (
    BACKUP_FILE,
    MANIFEST_FILE,
    MODELING_FILE,
    CheckpointLayoutError,
    default_modeling_file,
    patch_checkpoint,
    revert_checkpoint,
)
from vqathinker.training.configs import VQAModelConfig

CONFIG = {
    "architectures": ["InternVLChatModel"],
    "auto_map": {
        "AutoConfig": "configuration_internvl_chat.InternVLChatConfig",
        "AutoModel": "modeling_internvl_chat.InternVLChatModel",
    },
    "model_type": "internvl_chat",
}


@pytest.fixture
def checkpoint(tmp_path):
    """The remote-code files of a checkpoint (no weights: patching never loads the model)."""
    folder = tmp_path / "InternVL3-8B"
    folder.mkdir()
    for name in REMOTE_FILES:
        shutil.copyfile(FIXTURES / name, folder / name)
    (folder / "config.json").write_text(json.dumps(CONFIG))
    return folder


def test_patch_and_revert_restore_the_original_bytes(checkpoint):
    original = (checkpoint / MODELING_FILE).read_bytes()
    ours = default_modeling_file().read_bytes()

    result = patch_checkpoint(checkpoint)
    assert result.action == "patched"
    assert (checkpoint / MODELING_FILE).read_bytes() == ours
    assert (checkpoint / BACKUP_FILE).read_bytes() == original
    manifest = json.loads((checkpoint / MANIFEST_FILE).read_text())
    assert manifest["original_sha256"] == hashlib.sha256(original).hexdigest() == result.original_sha256
    assert manifest["installed_sha256"] == hashlib.sha256(ours).hexdigest()

    assert patch_checkpoint(checkpoint).action == "unchanged"  # idempotent, the backup stays the original
    assert (checkpoint / BACKUP_FILE).read_bytes() == original

    assert revert_checkpoint(checkpoint).action == "reverted"
    assert (checkpoint / MODELING_FILE).read_bytes() == original
    assert not (checkpoint / BACKUP_FILE).exists() and not (checkpoint / MANIFEST_FILE).exists()
    with pytest.raises(CheckpointLayoutError, match="nothing to revert"):
        revert_checkpoint(checkpoint)


def test_patching_again_updates_our_file_and_keeps_the_backup(checkpoint, tmp_path):
    original = (checkpoint / MODELING_FILE).read_bytes()
    patch_checkpoint(checkpoint)
    newer = tmp_path / "newer.py"
    newer.write_bytes(default_modeling_file().read_bytes() + b"\n# a later version\n")
    assert patch_checkpoint(checkpoint, newer).action == "updated"
    assert (checkpoint / MODELING_FILE).read_bytes() == newer.read_bytes()
    revert_checkpoint(checkpoint)
    assert (checkpoint / MODELING_FILE).read_bytes() == original


def test_a_corrupted_backup_is_not_restored(checkpoint):
    patch_checkpoint(checkpoint)
    (checkpoint / BACKUP_FILE).write_bytes(b"tampered")
    with pytest.raises(CheckpointLayoutError, match="does not match the sha256"):
        revert_checkpoint(checkpoint)


def test_an_unrelated_backup_is_never_overwritten(checkpoint):
    (checkpoint / BACKUP_FILE).write_bytes(b"someone's file")
    with pytest.raises(CheckpointLayoutError, match="already exists"):
        patch_checkpoint(checkpoint)
    assert (checkpoint / BACKUP_FILE).read_bytes() == b"someone's file"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda folder: (folder / "config.json").unlink(), "no config.json"),
        (lambda folder: _edit_config(folder, model_type="internvl"), "HF-format InternVL"),
        (lambda folder: _edit_config(folder, model_type="qwen2"), "only remote-code InternVL chat"),
        (
            lambda folder: _edit_config(folder, architectures=["LlavaForConditionalGeneration"]),
            "architectures",
        ),
        (lambda folder: _edit_config(folder, auto_map={"AutoModel": "modeling_x.X"}), "unknown remote-code"),
        (lambda folder: (folder / "modeling_intern_vit.py").unlink(), "lacks modeling_intern_vit.py"),
        (lambda folder: (folder / "config.json").write_text("{not json"), "not valid JSON"),
    ],
)
def test_unknown_layouts_are_refused_and_left_untouched(checkpoint, change, message):
    change(checkpoint)
    before = {path.name: path.read_bytes() for path in checkpoint.iterdir()}
    with pytest.raises(CheckpointLayoutError, match=message):
        patch_checkpoint(checkpoint)
    assert {path.name: path.read_bytes() for path in checkpoint.iterdir()} == before


def _edit_config(folder, **changes):
    (folder / "config.json").write_text(json.dumps({**CONFIG, **changes}))


def test_command_line(checkpoint, tmp_path, capsys):
    original = (checkpoint / MODELING_FILE).read_bytes()
    assert cli_main(["patch-checkpoint", str(checkpoint)]) == 0
    assert "kept as modeling_internvl_chat.py.orig" in capsys.readouterr().out
    assert cli_main(["patch-checkpoint", str(checkpoint), "--revert"]) == 0
    assert (checkpoint / MODELING_FILE).read_bytes() == original
    assert cli_main(["patch-checkpoint", str(tmp_path / "missing")]) == 1
    assert "is not a directory" in capsys.readouterr().err


def test_the_loader_asks_for_the_patch_first(checkpoint):
    with pytest.raises(ValueError, match="vqathinker patch-checkpoint"):
        load_model_and_processor(VQAModelConfig(model_name_or_path=str(checkpoint)).model_options())
