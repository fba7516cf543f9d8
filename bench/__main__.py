"""Run every benchmark module in bench/ (``python -m bench``), then the table of issue 17's targets
as this run measured them (each module prints its own rows as it goes: ``bench.common.check_target``)."""

import importlib
import pkgutil
from pathlib import Path

from bench.common import TARGET_CHECKS, print_target_table

for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda m: m.name):
    if info.name.startswith("_"):
        continue
    module = importlib.import_module(f"bench.{info.name}")
    if hasattr(module, "main"):
        print(f"== bench.{info.name}")
        module.main([])

if TARGET_CHECKS:
    print("== issue 17's targets, as this run measured them (ratios against baselines timed in the same run)")
    print_target_table(TARGET_CHECKS)
