#!/usr/bin/env bash
# Creates (or completes) the project's Python venv in .venv: pyarrow for checking that traces read in
# Python, and CPU torch + transformers for the oracle tests that compare the engine with Hugging Face.
# Idempotent: a venv that already has everything is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
req=tools/python-requirements.txt
if [ ! -f "$req" ]; then echo "setup-python: $req is missing" >&2; exit 1; fi
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup-python: creating .venv with $($python --version)" >&2
  "$python" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setup-python: installing $req into .venv (torch CPU and transformers: a few minutes the first time)" >&2
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$req"
echo "$want" > "$stamp"
