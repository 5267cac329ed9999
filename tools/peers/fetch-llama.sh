#!/usr/bin/env bash
# Fetches llama.cpp's source for the peer comparison (issue 17) and writes the pruned tarball the GPU
# machine builds from: .peers/llama.cpp.tar.xz (~2.3 MB) + .peers/llama.cpp.json (commit, versions).
#
# Why the PyPI sdist: the GPU machine has no network, the public repository is a 1.4 GB snapshot, and
# llama-cpp-python's sdist (76 MB, `pip download`, works wherever PyPI does) carries llama.cpp as its
# vendor/llama.cpp submodule together with the submodule's git metadata, which names the exact commit.
# Nothing of llama.cpp is committed to this repository; .peers/ is git-ignored.
#
# Pruned to what the CUDA build of libllama + llama-bench, llama-batched-bench and llama-quantize needs
# (and gguf-py, the Python GGUF package of the same commit, for our converter on the device).
# Usage: bash tools/peers/fetch-llama.sh   (idempotent: an existing tarball of the same version is kept)
set -euo pipefail
cd "$(dirname "$0")/../.."
PKG=llama-cpp-python
VER=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
DIR=.peers
OUT_TAR=$DIR/llama.cpp.tar.xz
OUT_JSON=$DIR/llama.cpp.json
mkdir -p "$DIR"
if [ -f "$OUT_TAR" ] && [ -f "$OUT_JSON" ] && grep -q "\"llama_cpp_python\": \"$VER\"" "$OUT_JSON"; then
  echo "fetch-llama: $OUT_TAR is already $PKG $VER; nothing to do" >&2
  exit 0
fi
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The sdist goes to a temporary folder, not .peers/: .peers is carried to the GPU machine (64 MiB limit).
# LLAMA_SDIST=<file> uses an sdist already downloaded.
sdist=${LLAMA_SDIST:-$work/llama_cpp_python-$VER.tar.gz}
if [ ! -f "$sdist" ]; then
  echo "fetch-llama: pip download $PKG==$VER (sdist, ~76 MB)" >&2
  "$python" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: "$PKG==$VER" -d "$work"
fi
[ -f "$sdist" ] || { echo "fetch-llama: pip did not produce $sdist" >&2; exit 1; }
tar xzf "$sdist" -C "$work"
root=$work/llama_cpp_python-$VER
src=$root/vendor/llama.cpp
[ -f "$src/CMakeLists.txt" ] || { echo "fetch-llama: $sdist has no vendor/llama.cpp/CMakeLists.txt" >&2; exit 1; }

# The submodule's git dir (.git/modules/vendor/llama.cpp) is in the sdist: HEAD is the commit.
gitdir=$root/.git/modules/vendor/llama.cpp
commit=$(cat "$gitdir/HEAD" 2>/dev/null || true)
[[ "$commit" =~ ^[0-9a-f]{40}$ ]] || { echo "fetch-llama: no llama.cpp commit in $gitdir/HEAD" >&2; exit 1; }
commit_date=$(git --git-dir="$gitdir" log -1 --format=%cI "$commit" 2>/dev/null || echo unknown)
commit_subject=$(git --git-dir="$gitdir" log -1 --format=%s "$commit" 2>/dev/null || echo unknown)
ggml_version=$(sed -n 's/^set(GGML_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)).*/\2/p' "$src/ggml/CMakeLists.txt" | paste -sd.)
gguf_py_version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$src/gguf-py/pyproject.toml" | head -1)

# Prune: top-level CMake files, cmake/, include/, src/, common/, vendor/, ggml/ (its CMake files,
# include/, the files directly in ggml/src/, ggml-cpu/, ggml-cuda/), three tools, gguf-py/gguf, LICENSE.
p=$work/llama.cpp
mkdir -p "$p/ggml/src" "$p/tools" "$p/gguf-py"
cp "$src"/CMakeLists.txt "$src"/LICENSE "$p/"
cp -r "$src"/cmake "$src"/include "$src"/src "$src"/common "$src"/vendor "$p/"
cp "$src"/ggml/CMakeLists.txt "$p/ggml/"
cp -r "$src"/ggml/cmake "$src"/ggml/include "$p/ggml/"
find "$src/ggml/src" -maxdepth 1 -type f -exec cp {} "$p/ggml/src/" \;
cp -r "$src"/ggml/src/ggml-cpu "$src"/ggml/src/ggml-cuda "$p/ggml/src/"
for t in llama-bench batched-bench quantize; do cp -r "$src/tools/$t" "$p/tools/"; done
cp -r "$src"/gguf-py/gguf "$p/gguf-py/"
cp "$src"/gguf-py/pyproject.toml "$p/gguf-py/"
# Only the three tools: the full tools/CMakeLists.txt adds a dozen more (server, mtmd, ...).
cat > "$p/tools/CMakeLists.txt" <<'CM'
# Pruned by moe-offload's tools/peers/fetch-llama.sh: only the tools the peer comparison runs.
find_package(Threads REQUIRED)
llama_add_compile_flags()
add_subdirectory(batched-bench)
add_subdirectory(llama-bench)
add_subdirectory(quantize)
CM
# build-info.cmake asks git for the commit; the tarball has no .git, so the build passes
# -DLLAMA_BUILD_COMMIT from this file instead (tools/peers/build-llama.sh).
echo "$commit" > "$p/LLAMA_COMMIT"
find "$p" -name '__pycache__' -prune -exec rm -rf {} +
# Reproducible bytes: same sdist, same tarball (sorted names, fixed times and owners).
tar -C "$work" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cJf "$OUT_TAR.partial" llama.cpp
mv "$OUT_TAR.partial" "$OUT_TAR"
sha=$(sha256sum "$OUT_TAR" | cut -d' ' -f1)
bytes=$(stat -c %s "$OUT_TAR")
cat > "$OUT_JSON" <<JS
{
  "llama_cpp_python": "$VER",
  "llama_cpp_commit": "$commit",
  "llama_cpp_commit_date": "$commit_date",
  "llama_cpp_commit_subject": $("$python" -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$commit_subject"),
  "ggml_version": "$ggml_version",
  "gguf_py_version": "$gguf_py_version",
  "source": "PyPI sdist $PKG==$VER, vendor/llama.cpp (submodule HEAD in .git/modules/vendor/llama.cpp)",
  "tarball": "$OUT_TAR",
  "tarball_bytes": $bytes,
  "tarball_sha256": "$sha"
}
JS
echo "fetch-llama: wrote $OUT_TAR ($((bytes / 1024)) KiB), llama.cpp $commit, ggml $ggml_version" >&2
