#!/usr/bin/env python3
"""Train LightGBM on vectorized EMBER data and save it to the artifact store:

    python scripts/train_ember.py DATA_DIR [--params ember|alectio|FILE.json] [-v 2]

Same code as ``vigil ember train``; evaluate a saved model with ``vigil ember evaluate DATA_DIR``.
"""

import sys
from pathlib import Path

try:
    import vigil  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from vigil.cli import main

if __name__ == "__main__":
    sys.exit(main(["ember", "train", *sys.argv[1:]]))
