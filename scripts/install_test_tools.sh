#!/usr/bin/env bash
# System tools the tests and benchmarks need beyond PyPI, from Debian's packages:
# chromium for the browser tests, wrk for the load benchmark (bench/load.py, `make bench`).
# Each is installed only when missing and when we may (root with apt-get); otherwise we say what to install.
set -euo pipefail

apt_updated=no
install_if_missing() {  # COMMAND PACKAGE PURPOSE
  local command=$1 package=$2 purpose=$3
  command -v "$command" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's $package for $purpose ..."
    if [ "$apt_updated" = no ]; then apt-get update -qq >/dev/null; apt_updated=yes; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null
  else
    echo "warning: $package is not installed; $purpose needs it (apt-get install $package)" >&2
  fi
}

install_if_missing chromium chromium "the browser tests"
install_if_missing wrk wrk "the load benchmark"

# A second interpreter with numpy 1.x: the Alectio platform side may still run numpy 1, and the compat
# tests load the pickles Vigil writes to the bucket in it (tests/compat/test_alectio_compat.py).
NUMPY1_VENV=${NUMPY1_VENV:-.venv-numpy1}
if [ ! -x "$NUMPY1_VENV/bin/python" ] || ! "$NUMPY1_VENV/bin/python" -c 'import numpy' 2>/dev/null; then
  echo "creating $NUMPY1_VENV with numpy 1.24.4 (no numpy._core, unlike 1.26) for the Alectio compatibility test ..."
  python3 -m venv "$NUMPY1_VENV"
  "$NUMPY1_VENV/bin/python" -m pip install --quiet numpy==1.24.4
fi
