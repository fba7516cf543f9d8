"""Where things must not leak (docs/DESIGN.md, issue 14): checked on the source, so a new import that
breaks the layering fails here, not in a review.

- no module under ``tasks/`` imports ``vigil.cli``, ``vigil.service`` or ``vigil.streaming``;
- no module under ``streaming/`` or ``service/`` (``service/compat/`` aside: the originals' own APIs)
  imports a task's package, only the task interface (``vigil.tasks``, ``vigil.tasks.base``);
- no module under ``streaming/`` names a task, in code or in words.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from vigil.tasks import TASKS

SRC = Path(__file__).resolve().parents[1] / "src" / "vigil"


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports (``import a.b``, ``from a.b import c`` as ``a.b`` and ``a.b.c``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def modules(folder: str, skip: str | None = None) -> list[Path]:
    return sorted(p for p in (SRC / folder).rglob("*.py") if skip is None or skip not in p.parts)


def under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize("path", modules("tasks"), ids=lambda p: str(p.relative_to(SRC)))
def test_task_code_imports_no_cli_service_or_streaming(path):
    leaks = sorted(
        n for n in imported(path) if any(under(n, p) for p in ("vigil.cli", "vigil.service", "vigil.streaming"))
    )
    assert not leaks, f"{path.relative_to(SRC)} imports {leaks}"


@pytest.mark.parametrize(
    "path", [*modules("streaming"), *modules("service", skip="compat")], ids=lambda p: str(p.relative_to(SRC))
)
def test_streaming_and_service_reach_tasks_only_through_the_interface(path):
    packages = [f"vigil.tasks.{name}" for name in TASKS]
    leaks = sorted(n for n in imported(path) if any(under(n, p) for p in packages))
    assert not leaks, f"{path.relative_to(SRC)} imports {leaks}"


@pytest.mark.parametrize("path", modules("streaming"), ids=lambda p: str(p.relative_to(SRC)))
def test_streaming_names_no_task(path):
    words = {w for name, spec in TASKS.items() for w in (name, spec.slug, name.split("_")[0])}
    pattern = re.compile(r"\b(" + "|".join(sorted(map(re.escape, words))) + r")\b", re.IGNORECASE)
    found = sorted({m.group(0) for m in pattern.finditer(path.read_text(encoding="utf-8"))})
    assert not found, f"{path.relative_to(SRC)} names {found}"
