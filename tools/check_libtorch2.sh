#!/usr/bin/env bash
# Compiles every birdplane source (no linking) against another LibTorch, e.g. PyTorch 2.x's on the
# GPU machine, to check that no API removed in 2.x is used. Header-only dependencies come from DEPS
# (a folder holding nlohmann/, fmt/, CLI/ and stb/ copied from this machine's /usr/include).
# Usage: tools/check_libtorch2.sh TORCH_PREFIX DEPS [JOBS]
set -uo pipefail
export prefix=$1 deps=$2
jobs=${3:-8}
check_one() {
  local f=$1
  local inc="-I include -I apps/birdplane -I $deps -I $deps/stb -I $prefix/include -I $prefix/include/torch/csrc/api/include"
  if out=$(g++ -std=c++17 -fsyntax-only -DFMT_HEADER_ONLY -DBIRDPLANE_VERSION='"check"' $inc "$f" 2>&1); then
    echo "ok   $f"
  else
    echo "FAIL $f"
    echo "$out" | grep -E 'error' | head -10
  fi
}
export -f check_one
ls src/*.cpp src/*/*.cpp src/*/*/*.cpp apps/birdplane/*.cpp | grep -v 'src/data/download.cpp' |
  xargs -P "$jobs" -I{} bash -c 'check_one {}' | tee /tmp/libtorch2-check.txt
fails=$(grep -c '^FAIL' /tmp/libtorch2-check.txt)
echo "files failing: $fails"
exit "$fails"
