"""``vqathinker patch-checkpoint`` from an installed wheel: the modeling file ships as package data.

The wheel is built from a copy of the source tree (so no build output lands in the checkout), installed with
``--no-deps`` into a fresh virtual environment whose only view of the heavy dependencies is a ``.pth`` line
pointing at the test interpreter's site-packages, and that environment's ``vqathinker`` console script patches
a test remote-code checkpoint. Nothing of the source tree is on that environment's path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.remote_checkpoint import write_remote_checkpoint
from vqathinker.model.patching import BACKUP_FILE, MANIFEST_FILE, MODELING_FILE

REPO = Path(__file__).resolve().parents[1]
PACKAGED_MODELING = "vqathinker/model/patch/" + MODELING_FILE


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _build_wheel(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    build = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", "dist", "."], source
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = (source / "dist").glob("vqathinker-*.whl")
    return wheel


def _venv_with_wheel(tmp_path: Path, wheel: Path) -> Path:
    venv = tmp_path / "venv"
    created = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path)
    assert created.returncode == 0, created.stderr
    python = venv / "bin" / "python"
    install = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        tmp_path,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    # Installed first, so pip never sees the shared environment's own vqathinker record.
    site_packages = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path
    )
    shared = sysconfig.get_paths()["purelib"]
    (Path(site_packages.stdout.strip()) / "vqathinker_test_shared.pth").write_text(shared + "\n")
    return venv


@pytest.mark.slow
def test_patch_checkpoint_works_from_an_installed_wheel(tmp_path):
    wheel = _build_wheel(tmp_path)
    ours = (REPO / "src" / PACKAGED_MODELING).read_bytes()
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read(PACKAGED_MODELING) == ours
        licences = [name for name in archive.namelist() if name.endswith(".dist-info/licenses/LICENSE")]
        assert len(licences) == 1 and b"Apache License" in archive.read(licences[0])

    venv = _venv_with_wheel(tmp_path, wheel)
    where = _run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import vqathinker.model.patching as p; print(p.__file__); print(p.default_modeling_file())",
        ],
        tmp_path,
    )
    assert where.returncode == 0, where.stderr
    module_file, modeling_file = where.stdout.split()
    assert Path(module_file).is_relative_to(venv) and Path(modeling_file).is_relative_to(venv)

    checkpoint = write_remote_checkpoint(tmp_path / "InternVL3-tiny", patched=False)
    original = (checkpoint / MODELING_FILE).read_bytes()
    assert original != ours
    patched = _run([str(venv / "bin" / "vqathinker"), "patch-checkpoint", str(checkpoint)], tmp_path)
    assert patched.returncode == 0, patched.stdout + patched.stderr
    assert f"installed vqathinker's {MODELING_FILE}" in patched.stdout
    assert (checkpoint / MODELING_FILE).read_bytes() == ours
    assert (checkpoint / BACKUP_FILE).read_bytes() == original
    assert (checkpoint / MANIFEST_FILE).is_file()

    reverted = _run(
        [str(venv / "bin" / "vqathinker"), "patch-checkpoint", str(checkpoint), "--revert"], tmp_path
    )
    assert reverted.returncode == 0, reverted.stdout + reverted.stderr
    assert (checkpoint / MODELING_FILE).read_bytes() == original
