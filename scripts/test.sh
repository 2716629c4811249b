#!/usr/bin/env bash
# The whole test suite: unit, view and end-to-end tests, the real local model, and (when the
# remote-backend tests are present) a real llama.cpp server on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --all-targets "$@"
