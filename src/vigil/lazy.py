"""Re-exporting a package's names on first use, so importing the package imports none of its modules.

In a package's ``__init__.py``::

    __getattr__, __all__ = lazy_exports(__name__, {"WebEventsTask": "task", "train_model": "train"})

>>> getattr_, names = lazy_exports("json", {"JSONDecodeError": "decoder"})
>>> getattr_("JSONDecodeError").__name__, names
('JSONDecodeError', ['JSONDecodeError'])
"""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], list[str]]:
    """A module ``__getattr__`` that imports ``package.<exports[name]>`` when ``name`` is first asked
    for, and the ``__all__`` that lists the names."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__, list(exports)


__all__ = ["lazy_exports"]
