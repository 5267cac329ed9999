#!/usr/bin/env bash
# Sets up a fresh checkout: npm packages, the TypeScript build, and the native engine (CPU build; the
# CUDA build happens on the GPU machine, see README). Everything installs from the registries alone.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "setup: npm packages" >&2
npm ci --no-audit --no-fund
echo "setup: TypeScript" >&2
npm run --silent build
if [ -f native/CMakeLists.txt ]; then
  echo "setup: native engine (CPU)" >&2
  npm run --silent build:native
fi
