"""Run every benchmark module in bench/ (``python -m bench``), each in a process of its own as its
own command line runs it (``python -m bench.<module>``: no module inherits another's threads, heap
or compiled kernels, and one that fails does not stop the rest), then the table of issue 17's targets
as this run measured them (each module prints its own rows as it goes: ``bench.common.check_target``)."""

import pkgutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import REPO, TARGETS_FILE_VARIABLE, child_env, print_target_table, read_target_checks

checks = []
failed = []
with tempfile.TemporaryDirectory(prefix="vigil-bench-") as folder:
    for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "common":
            continue
        print(f"== bench.{info.name}", flush=True)
        targets = Path(folder) / f"{info.name}.jsonl"
        env = child_env(**{TARGETS_FILE_VARIABLE: str(targets)})
        done = subprocess.run([sys.executable, "-m", f"bench.{info.name}"], cwd=REPO, env=env)
        if done.returncode != 0:
            failed.append(f"bench.{info.name} (exit status {done.returncode})")
        checks += read_target_checks(targets)

if checks:
    print("== issue 17's targets, as this run measured them (ratios against baselines timed in the same run)")
    print_target_table(checks)
if failed:
    print("failed: " + ", ".join(failed))
    sys.exit(1)
