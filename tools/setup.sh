#!/usr/bin/env bash
# Sets up a fresh checkout: npm packages, the TypeScript build, and the native engine (CPU build; the
# CUDA build happens on the GPU machine, see README). Everything installs from the registries alone.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "setup: npm packages (npm install: the lock file omits other platforms' optional DuckDB bindings, which npm ci refuses)" >&2
npm install --no-audit
echo "setup: TypeScript" >&2
npm run --silent build
if [ -f native/CMakeLists.txt ]; then
  echo "setup: native engine (CPU)" >&2
  npm run --silent build:native
fi
