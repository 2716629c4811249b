#!/usr/bin/env bash
# The whole test suite: unit, view and end-to-end tests, the real local model, a real
# llama.cpp `llama-server` on loopback for the remote backends, and a real MCP server over stdio.
#
# Builds llama-server once (scripts/llama-server.sh caches it outside the clone), starts it on a
# free loopback port serving the default SmolLM2 GGUF, waits for /health, exports its URL as
# PROMPTLOOM_TEST_LLAMA_URL, runs `cargo test --all-targets --no-fail-fast` (every target, even
# after a failing one), and stops it on exit. A canary API
# key is exported for the whole run; the tests assert it never reaches a session file, an
# export, a log or the terminal, and this script checks the server's log for it too.
set -euo pipefail
cd "$(dirname "$0")/.."

# Everything the suite needs besides Rust (cmake, a C++ compiler, tmux, pip), before the long build.
scripts/setup.sh test

# A real MCP server over stdio for tests/mcp_stdio.rs: the `mcp` PyPI package (its MCPServer)
# in a venv outside the clone, made once.
mcp_venv="${PROMPTLOOM_MCP_VENV:-$HOME/.cache/promptloom/mcp-venv}"
if ! "$mcp_venv/bin/python" -c 'import mcp.server.mcpserver' 2>/dev/null; then
  echo "test.sh: installing the mcp package into $mcp_venv"
  python3 -m venv "$mcp_venv"
  "$mcp_venv/bin/python" -m pip install -q "mcp==2.3.0"
fi
export PROMPTLOOM_TEST_MCP_PYTHON="$mcp_venv/bin/python"

# Build every test target first, then fetch the model with the binary the end-to-end tests
# run: one build of the dependency tree, with the test feature set.
cargo test --all-targets --no-run
"${CARGO_TARGET_DIR:-target}/debug/promptloom" model fetch

data_dir="${PROMPTLOOM_DATA_DIR:-$HOME/.local/share/promptloom}"
model="${PROMPTLOOM_TEST_GGUF:-$data_dir/models/SmolLM2-135M-Instruct.Q8_0.gguf}"
[ -f "$model" ] || { echo "test.sh: the default model is missing at $model; run \`make model\`" >&2; exit 1; }

llama_bin="$(scripts/llama-server.sh)"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
server_log="$(mktemp "${TMPDIR:-/tmp}/promptloom-llama-server.XXXXXX.log")"
# Four slots so four variants stream at once. PROMPTLOOM_LLAMA_THREADS=1 keeps llama.cpp's
# busy-waiting threads from collapsing when other builds load a two-core machine.
# On CPUs with AMX, llama.cpp's weight repacking crashes while loading (a segfault after
# "llama threadpool init"): there, and after any crash while loading, it runs with --no-repack.
# --jinja: the chat template with tools, so `tools` requests are accepted and tool calls parsed.
llama_args=(-m "$model" --host 127.0.0.1 --port "$port" -t "${PROMPTLOOM_LLAMA_THREADS:-2}" --parallel 4 -c 8192 --jinja)
no_repack=()
if grep -qiw 'amx_int8\|amx_tile' /proc/cpuinfo 2>/dev/null && "$llama_bin" --help 2>&1 | grep -q -- '--no-repack'; then
  echo "test.sh: this CPU has AMX: starting llama-server with --no-repack (its repacking crashes on AMX)"
  no_repack=(--no-repack)
fi
start_server() {
  "$llama_bin" "${llama_args[@]}" "${no_repack[@]}" >"$server_log" 2>&1 &
  server_pid=$!
}
start_server
# The server goes when the suite ends, passed, failed or interrupted (it used to stay running,
# one more idle llama-server and ~375 MB per `make test`).
trap 'kill "$server_pid" 2>/dev/null || true' EXIT
url="http://127.0.0.1:$port"
for _ in $(seq 1 240); do
  if python3 -c "import urllib.request, sys; sys.exit(0 if urllib.request.urlopen('$url/health', timeout=2).status == 200 else 1)" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    status=0; wait "$server_pid" 2>/dev/null || status=$?
    if [ "${#no_repack[@]}" -eq 0 ] && "$llama_bin" --help 2>&1 | grep -q -- '--no-repack'; then
      echo "test.sh: llama-server exited while loading (status $status); starting it again with --no-repack. Its log:" >&2
      tail -n 5 "$server_log" >&2
      no_repack=(--no-repack)
      start_server
      continue
    fi
    echo "test.sh: llama-server exited (status $status); its log:" >&2
    cat "$server_log" >&2
    exit 1
  fi
  sleep 0.5
done
python3 -c "import urllib.request; urllib.request.urlopen('$url/health', timeout=2)" \
  || { echo "test.sh: llama-server did not become healthy; log: $server_log" >&2; exit 1; }
echo "test.sh: llama-server ready at $url"

export PROMPTLOOM_TEST_LLAMA_URL="$url"
# In this suite a missing server or model is a failure, not a skip.
export PROMPTLOOM_REQUIRE_SERVERS=1
export PROMPTLOOM_CANARY_KEY="sk-canary-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"

cargo test --all-targets --no-fail-fast "$@"

if grep -q "$PROMPTLOOM_CANARY_KEY" "$server_log"; then
  echo "test.sh: the canary API key appears in the llama-server log $server_log" >&2
  exit 1
fi
rm -f "$server_log"
