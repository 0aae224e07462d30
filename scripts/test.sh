#!/usr/bin/env bash
# Install what the tests need (Debian's chromium for the browser tests, the package with its
# test extra) and run the suite. pytest's exit status is passed through: 5 (no tests
# collected) is a failure, not hidden.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
fi
python3 -m pip install -q -e ".[test,foreign,cluster]"
# onnx2torch without its dependencies: its torchvision pulls a CUDA torch in beside the CPU
# build, and hearsight gives it a stand-in for the two converters that need torchvision.
python3 -m pip install -q --no-deps "onnx2torch==1.5.15"
export HEARSIGHT_REQUIRE_BROWSER=1  # chromium was installed above: browser tests must run
export HEARSIGHT_HOME="${HEARSIGHT_HOME:-$(mktemp -d)}"
python3 -m pytest "$@"
