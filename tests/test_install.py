"""A non-editable install works: the wheel carries the sample data, and the installed copy finds it
(``Settings.data_dir``) and trains default models from it, run from a folder outside the checkout.

Offline: the wheel is built with the installed setuptools (``--no-build-isolation``) and installed with
``--no-deps --target`` (the dependencies are this interpreter's own).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD_INPUTS = ("pyproject.toml", "setup.py", "README.md", "src", "data")


def _clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_") and k != "PYTHONPATH"}
    return {**env, **extra}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel built from a copy of the checkout, installed into its own folder; returns that folder."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"  # a copy, so the build's build/ and egg-info never land in the checkout
    source.mkdir()
    for name in BUILD_INPUTS:
        if (REPO_ROOT / name).is_dir():
            shutil.copytree(
                REPO_ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
            )
        else:
            shutil.copy2(REPO_ROOT / name, source / name)
    build_env = {**os.environ, "PIP_NO_INDEX": "1"}  # a PYTHONPATH given to the tests (setuptools) stays
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q", "-w", root],
        check=True,
        cwd=root,
        env=build_env,
    )
    (wheel,) = root.glob("vigil-*.whl")
    site = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", site, wheel],
        check=True,
        cwd=root,
        env=build_env,
    )
    (root / "elsewhere").mkdir()
    return site


def _run(site: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=site.parent / "elsewhere",  # outside the checkout: nothing can be found through the working directory
        env=_clean_env(PYTHONPATH=str(site), **env),
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_installed_copy_finds_its_sample_data(installed):
    probe = (
        "import json, vigil, vigil.config as c; s = c.Settings.from_env(); "
        "print(json.dumps({'module': vigil.__file__, 'data_dir': str(s.data_dir), 'in_checkout': c.IN_CHECKOUT, "
        "'iot': sorted(p.name for p in (s.data_dir / 'iot_anomaly').iterdir())}))"
    )
    result = _run(installed, "-c", probe)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert Path(found["module"]).is_relative_to(installed)
    assert not found["in_checkout"]
    data_dir = Path(found["data_dir"])
    assert data_dir.is_relative_to(installed) and data_dir.is_dir()
    assert {"body.csv", "db_moto.csv", "cars93.csv", "SOURCE.md"} <= set(found["iot"])
    shipped = {p.relative_to(REPO_ROOT / "data") for p in (REPO_ROOT / "data").rglob("*") if p.is_file()}
    installed_files = {
        p.relative_to(data_dir) for p in data_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    }
    assert shipped - installed_files == set()


@pytest.mark.parametrize(
    "slug",
    [
        "iot-anomaly",
        "web-sessions",
        "web-events",
        "ember",
        "dns",
    ],
)
def test_installed_copy_trains_the_default_model(installed, slug, tmp_path):
    result = _run(
        installed,
        "-m",
        "vigil",
        "bootstrap",
        slug,
        VIGIL_MODELS_DIR=str(tmp_path / "models"),
        VIGIL_WORK_DIR=str(tmp_path / "runs"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{slug}: saved v1" in result.stdout
    assert any((tmp_path / "models").rglob("*")), "nothing saved in VIGIL_MODELS_DIR"


def test_installed_copy_has_every_page_template_and_static_file(installed):
    """The console's pages render from the installed copy: every non-Python file under src/vigil is in it."""
    package = REPO_ROOT / "src" / "vigil"
    shipped = {
        p.relative_to(package)
        for p in package.rglob("*")
        if p.is_file() and p.suffix not in {".py", ".pyc", ".typed"} and "__pycache__" not in p.parts
    }
    installed_files = {p.relative_to(installed / "vigil") for p in (installed / "vigil").rglob("*") if p.is_file()}
    assert shipped - installed_files == set()
