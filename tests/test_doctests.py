"""Docstring examples are tests: every module under src/vigil that shows ``>>>`` examples runs them.

Convention: an example marked ``# doctest: +SKIP`` (one that needs data, a model or a network) skips
the rest of its docstring too, so an illustrative session needs the mark once, on its first line;
every other example must print exactly what it shows (``...`` matches anything).
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
MODULES = sorted(
    ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
    for path in (SRC / "vigil").rglob("*.py")
    if ">>> " in path.read_text(encoding="utf-8")
)
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def runnable(test: doctest.DocTest) -> doctest.DocTest:
    skipping = False
    for example in test.examples:
        skipping = skipping or example.options.get(doctest.SKIP, False)
        if skipping:
            example.options[doctest.SKIP] = True
    return test


@pytest.mark.parametrize(
    "name",
    [name for name in MODULES],
)
def test_docstring_examples_run(name, monkeypatch):
    monkeypatch.chdir(REPO)  # examples name repository paths (data/...)
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in doctest.DocTestFinder().find(module, module.__name__):
        runner.run(runnable(test))
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (output above)"
