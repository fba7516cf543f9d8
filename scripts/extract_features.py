#!/usr/bin/env python3
"""Raw EMBER features of PE files, one JSON line per file:

    python scripts/extract_features.py FILE_OR_DIR... -o raw.jsonl [--label 0|1|-1]

Same code as ``vigil ember extract``.
"""

import sys
from pathlib import Path

try:
    import vigil  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from vigil.cli import main

if __name__ == "__main__":
    sys.exit(main(["ember", "extract", *sys.argv[1:]]))
