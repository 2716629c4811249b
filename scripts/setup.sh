#!/usr/bin/env bash
# What `make run` and `make test` need besides Rust, checked (and installed where we can) before
# anything long starts: a missing tool is found in the first second, never after a 20-minute build.
#
#   scripts/setup.sh run    # cargo, a C compiler (for -sys crates), python3 with pip (model fetch)
#   scripts/setup.sh test   # the above, plus cmake and a C++ compiler (llama-server), tmux (TUI tests),
#                           # python3's venv (the MCP test server); as root also chromium (the HTML
#                           # export's screenshot test, which skips, saying so, without it)
#
# Missing Debian packages are installed with apt-get when we are root (as on CI and on the
# project's machines); otherwise the script prints the one command that installs them and exits 1.
# PROMPTLOOM_NO_INSTALL=1 only reports.
set -euo pipefail

what="${1:-run}"
need=()        # "command:debian-package"
need+=("cc:gcc" "make:make" "python3:python3")
optional=()    # installed when we can install; without them a test says "skipped: ..."
if [ "$what" = test ]; then
  need+=("cmake:cmake" "c++:g++" "tmux:tmux")
  optional+=("chromium:chromium")
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is missing: install Rust from your package manager or rustup, then run this again" >&2
  exit 1
fi

missing_pkgs=()
for pair in "${need[@]}"; do
  cmd="${pair%%:*}"; pkg="${pair##*:}"
  command -v "$cmd" >/dev/null 2>&1 || missing_pkgs+=("$pkg")
done
if command -v python3 >/dev/null 2>&1 && ! python3 -m pip --version >/dev/null 2>&1; then
  missing_pkgs+=("python3-pip")
fi
# The MCP test server's venv (scripts/test.sh): Debian's python3 makes venvs only with python3-venv.
if [ "$what" = test ] && command -v python3 >/dev/null 2>&1 && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  missing_pkgs+=("python3-venv")
fi

can_install=0
if [ "${PROMPTLOOM_NO_INSTALL:-0}" != 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  can_install=1
fi
for pair in ${optional[@]+"${optional[@]}"}; do
  cmd="${pair%%:*}"; pkg="${pair##*:}"
  if ! command -v "$cmd" >/dev/null 2>&1; then
    if [ "$can_install" = 1 ]; then
      missing_pkgs+=("$pkg")
    else
      echo "setup: optional $pkg is not installed: the tests that need it will say skipped (apt-get install $pkg)" >&2
    fi
  fi
done

if [ "${#missing_pkgs[@]}" -eq 0 ]; then
  exit 0
fi

cmd="apt-get update && apt-get install -y ${missing_pkgs[*]}"
if [ "$can_install" = 1 ]; then
  echo "setup: installing ${missing_pkgs[*]} (needed by make $what)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${missing_pkgs[@]}" >/dev/null
  exit 0
fi

echo "setup: make $what needs ${missing_pkgs[*]}, which are not installed. Install them with:" >&2
if [ "$(id -u)" = 0 ]; then echo "  $cmd" >&2; else echo "  sudo sh -c '$cmd'" >&2; fi
echo "(or the equivalent for your system), then run make $what again." >&2
exit 1
