#!/usr/bin/env bash
# usage: scripts/fuzz.sh [SECONDS]   (default 60)
# Runs every fuzz target (src/fuzz.rs) for SECONDS each, with fresh random inputs every round,
# and prints how many inputs each one took without a panic. A failure prints the smallest
# input found and exits non-zero. Builds without mistral.rs (the parsers don't need it).
set -euo pipefail
secs=${1:-60}
cd "$(dirname "$0")/.."
PROMPTLOOM_FUZZ_SECONDS=$secs PROMPTLOOM_FUZZ_CASES=${PROMPTLOOM_FUZZ_CASES:-1024} \
  cargo test --no-default-features --lib fuzz:: -- --nocapture --test-threads="${FUZZ_THREADS:-2}" 2>&1 |
  grep -E '^fuzz |panicked|FAILED|test result|minimal failing input' || true
test "${PIPESTATUS[0]}" -eq 0
