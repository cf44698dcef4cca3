#!/usr/bin/env bash
# Manim needs Pango and Cairo (with headers, to build ManimPango) and pkg-config.
# Installs them with apt when we are root on a Debian/Ubuntu machine; otherwise prints the command.
# With --browser (make test): Chromium instead, for tests/test_browser.py, which drives JupyterLab in a
# headless browser. Installed the same way; where it cannot be, a note and no error: that test then says
# it was skipped (and fails when CI=true).
set -u
if [ "${1:-}" = "--browser" ]; then
  for b in chromium chromium-browser google-chrome google-chrome-stable; do
    command -v "$b" >/dev/null 2>&1 && exit 0
  done
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Chromium for the browser test (tests/test_browser.py)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null && exit 0
    echo "apt-get could not install chromium; tests/test_browser.py will be skipped (failed if CI=true)" >&2
    exit 0
  fi
  echo "tests/test_browser.py needs Chromium, which is missing: it will be skipped (failed if CI=true)." >&2
  echo "To run it:  sudo apt-get update && sudo apt-get install -y chromium" >&2
  exit 0
fi
need=()
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
if command -v pkg-config >/dev/null 2>&1; then
  pkg-config --exists pangocairo 2>/dev/null || need+=(libpango1.0-dev)
  pkg-config --exists cairo 2>/dev/null || need+=(libcairo2-dev)
else
  need+=(libpango1.0-dev libcairo2-dev)
fi
[ ${#need[@]} -eq 0 ] && exit 0
cmd="apt-get install -y ${need[*]}"
if [ "$(uname -s)" != "Linux" ]; then
  echo "Triton runs on Linux only: use WSL2 on Windows or a Linux container/VM on macOS (see README)." >&2
  exit 1
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages for manim: ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive $cmd -qq >/dev/null && exit 0
  echo "apt-get failed; run by hand: apt-get update && $cmd" >&2
  exit 1
fi
echo "Manim needs system packages that are missing: ${need[*]}" >&2
echo "Run:  sudo apt-get update && sudo $cmd   (then run make again)" >&2
exit 1
