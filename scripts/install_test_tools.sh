#!/usr/bin/env bash
# System tools the test suite needs beyond PyPI: Debian's Chromium for the browser tests.
# Installed only when missing and when we may (root with apt-get); otherwise say what to install.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the browser tests ..."
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "warning: chromium is not installed; the browser tests need it (apt-get install chromium)" >&2
fi
# Debian's wrk drives the load benchmark (bench/load.py, `make bench`).
if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's wrk for the load benchmark ..."
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  else
    echo "warning: wrk is not installed; bench/load.py needs it (apt-get install wrk)" >&2
  fi
fi
