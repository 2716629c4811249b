#!/usr/bin/env bash
# usage: scripts/fuzz.sh [SECONDS]   (default 60)
# Runs every fuzz target (src/fuzz.rs) for SECONDS each through `promptloom bench --fuzz`,
# with fresh random inputs every round, and prints how many inputs each one took and the
# crashes. A crash prints the smallest input found and exits non-zero. Builds without
# mistral.rs (the parsers don't need it).
set -euo pipefail
secs=${1:-60}
cd "$(dirname "$0")/.."
cargo run --no-default-features --quiet -- bench --fuzz "$secs"
