"""``vqathinker patch-checkpoint DIR [--revert]``: put vqathinker's chat model into a remote-code checkpoint.

Remote-code InternVL checkpoints (``OpenGVLab/InternVL3-8B``, the VQAThinker release) carry their model
class in ``modeling_internvl_chat.py``, which ``transformers`` imports with ``trust_remote_code``. The seed
asks to replace that file with the one vqathinker provides (``modeling_internvl_chat.py`` in the package
data folder ``vqathinker/model/patch/``, found with :mod:`importlib.resources`); this command does it
safely:

- it checks that DIR is such a checkpoint (``config.json`` with model_type ``internvl_chat``, architecture
  ``InternVLChatModel``, an ``auto_map`` naming ``modeling_internvl_chat.InternVLChatModel`` and the files
  ours imports) and refuses anything else, saying why;
- it keeps the original bytes in ``modeling_internvl_chat.py.orig`` and their sha256 in
  ``vqathinker_patch.json``, then installs ours; patching again updates ours and keeps the backup;
- ``--revert`` puts the original bytes back (after checking the backup's sha256) and removes both files.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

MODELING_FILE = "modeling_internvl_chat.py"
BACKUP_FILE = MODELING_FILE + ".orig"
MANIFEST_FILE = "vqathinker_patch.json"
MARKER = "VQATHINKER_MODELING = "
"""A line of vqathinker's ``modeling_internvl_chat.py`` that no original modeling file has."""
REQUIRED_FILES = (
    MODELING_FILE,
    "configuration_internvl_chat.py",
    "modeling_intern_vit.py",
    "conversation.py",
)
"""Files our modeling file imports from the checkpoint (relative imports, like the original's)."""
AUTO_MODEL = "modeling_internvl_chat.InternVLChatModel"
AUTO_CONFIG = "configuration_internvl_chat.InternVLChatConfig"


PATCH_DATA_DIR = "patch"
"""Folder of package data in ``vqathinker.model`` holding our modeling file (not a Python package)."""


def default_modeling_file() -> Traversable:
    """vqathinker's ``modeling_internvl_chat.py``, shipped as package data (source tree, editable or wheel)."""
    return files("vqathinker.model") / PATCH_DATA_DIR / MODELING_FILE


class CheckpointLayoutError(ValueError):
    """DIR is not a remote-code InternVL chat checkpoint this command knows how to patch."""


@dataclass(frozen=True)
class PatchResult:
    """What :func:`patch_checkpoint` / :func:`revert_checkpoint` did, for the command's report."""

    action: str  # "patched", "updated", "unchanged" or "reverted"
    modeling_sha256: str  # of the modeling file now in place
    original_sha256: str | None  # of the backed-up original (None when the folder had ours only)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_vqathinker_modeling(source: bytes) -> bool:
    """Whether a modeling file's bytes are (some version of) vqathinker's."""
    return any(line.startswith(MARKER.encode()) for line in source.splitlines())


def check_remote_checkpoint(checkpoint: str | Path) -> dict:
    """``config.json`` of a remote-code InternVL chat checkpoint; :class:`CheckpointLayoutError` otherwise."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_dir():
        raise CheckpointLayoutError(f"{str(checkpoint)!r} is not a directory")
    config_path = checkpoint / "config.json"
    if not config_path.is_file():
        raise CheckpointLayoutError(f"{str(checkpoint)!r} has no config.json: not a model checkpoint")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointLayoutError(f"{config_path}: not valid JSON ({error})") from error
    model_type = config.get("model_type")
    if model_type == "internvl":
        raise CheckpointLayoutError(
            f"{str(checkpoint)!r} is an HF-format InternVL checkpoint (model_type 'internvl'): it has no remote "
            "code to patch and loads as it is"
        )
    if model_type != "internvl_chat":
        raise CheckpointLayoutError(
            f"{str(checkpoint)!r} has model_type {model_type!r}; only remote-code InternVL chat checkpoints "
            "(model_type 'internvl_chat', e.g. OpenGVLab/InternVL3-8B) can be patched"
        )
    architectures = config.get("architectures") or []
    if "InternVLChatModel" not in architectures:
        raise CheckpointLayoutError(
            f"{config_path}: architectures {architectures} do not include InternVLChatModel"
        )
    auto_map = config.get("auto_map") or {}
    if auto_map.get("AutoConfig") != AUTO_CONFIG or AUTO_MODEL not in (
        auto_map.get("AutoModel"),
        auto_map.get("AutoModelForCausalLM"),
    ):
        raise CheckpointLayoutError(
            f"{config_path}: auto_map {auto_map} does not map AutoConfig to {AUTO_CONFIG} and AutoModel to "
            f"{AUTO_MODEL}: unknown remote-code layout"
        )
    missing = [name for name in REQUIRED_FILES if not (checkpoint / name).is_file()]
    if missing:
        raise CheckpointLayoutError(
            f"{str(checkpoint)!r} lacks {', '.join(missing)}: unknown remote-code layout"
        )
    return config


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def patch_checkpoint(checkpoint: str | Path, modeling_file: str | Path | None = None) -> PatchResult:
    """Back up the checkpoint's ``modeling_internvl_chat.py`` and install vqathinker's (idempotent)."""
    checkpoint = Path(checkpoint)
    check_remote_checkpoint(checkpoint)
    source_path = default_modeling_file() if modeling_file is None else Path(modeling_file)
    if not source_path.is_file():
        raise FileNotFoundError(
            f"vqathinker's modeling file {str(source_path)!r} is missing: reinstall vqathinker or pass "
            "--modeling-file"
        )
    ours = source_path.read_bytes()
    if not is_vqathinker_modeling(ours):
        raise ValueError(f"{str(source_path)!r} is not vqathinker's modeling file (no {MARKER.strip()} line)")
    target, backup, manifest_path = (
        checkpoint / MODELING_FILE,
        checkpoint / BACKUP_FILE,
        checkpoint / MANIFEST_FILE,
    )
    current = target.read_bytes()
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else None

    if is_vqathinker_modeling(current):
        original = manifest["original_sha256"] if manifest else None
        if current == ours:
            return PatchResult("unchanged", sha256(ours), original)
        _write_atomic(target, ours)
        if manifest:
            manifest["installed_sha256"] = sha256(ours)
            _write_atomic(manifest_path, (json.dumps(manifest, indent=2) + "\n").encode())
        return PatchResult("updated", sha256(ours), original)

    if backup.exists() and backup.read_bytes() != current:
        raise CheckpointLayoutError(
            f"{str(backup)!r} already exists and differs from the current {MODELING_FILE}: move it away first "
            "(it may be the only copy of an original)"
        )
    original_sha = sha256(current)
    _write_atomic(backup, current)
    manifest = {
        "modeling_file": MODELING_FILE,
        "backup": BACKUP_FILE,
        "original_sha256": original_sha,
        "installed_sha256": sha256(ours),
    }
    _write_atomic(manifest_path, (json.dumps(manifest, indent=2) + "\n").encode())
    _write_atomic(target, ours)
    return PatchResult("patched", sha256(ours), original_sha)


def revert_checkpoint(checkpoint: str | Path) -> PatchResult:
    """Restore the original ``modeling_internvl_chat.py`` bytes saved by :func:`patch_checkpoint`."""
    checkpoint = Path(checkpoint)
    check_remote_checkpoint(checkpoint)
    backup, manifest_path = checkpoint / BACKUP_FILE, checkpoint / MANIFEST_FILE
    if not manifest_path.is_file() or not backup.is_file():
        raise CheckpointLayoutError(
            f"{str(checkpoint)!r} was not patched by vqathinker patch-checkpoint (no {MANIFEST_FILE} and "
            f"{BACKUP_FILE}): nothing to revert"
        )
    manifest = json.loads(manifest_path.read_text())
    original = backup.read_bytes()
    if sha256(original) != manifest["original_sha256"]:
        raise CheckpointLayoutError(
            f"{str(backup)!r} does not match the sha256 recorded in {MANIFEST_FILE} "
            f"({sha256(original)} vs {manifest['original_sha256']}): refusing to restore it"
        )
    _write_atomic(checkpoint / MODELING_FILE, original)
    backup.unlink()
    manifest_path.unlink()
    return PatchResult("reverted", sha256(original), sha256(original))
