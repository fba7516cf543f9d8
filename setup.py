"""Packaging beyond what pyproject.toml can say: the shipped samples (the top-level data/ folder, whose
place the product fixes) are installed as the package data of ``vigil.sample_data``, so a non-editable
``pip install .`` finds them (``vigil.config.SAMPLE_DATA``). Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages("src"), "vigil.sample_data"],
    package_dir={"": "src", "vigil.sample_data": "data"},
)
