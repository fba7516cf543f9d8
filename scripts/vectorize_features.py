#!/usr/bin/env python3
"""Vectorize EMBER raw features, as the Alectio ember example runs it:

    python scripts/vectorize_features.py -v 2 DATA_DIR

Same code as ``vigil ember vectorize DATA_DIR --feature-version 2``: reads train_features_*.jsonl and
test_features.jsonl in DATA_DIR, writes X_train.dat, y_train.dat, X_test.dat, y_test.dat and metadata.csv.
"""

import sys
from pathlib import Path

try:
    import vigil  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from vigil.cli import main

if __name__ == "__main__":
    sys.exit(main(["ember", "vectorize", *sys.argv[1:]]))
