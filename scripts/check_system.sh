#!/usr/bin/env bash
# Manim needs Pango and Cairo (with headers, to build ManimPango) and pkg-config.
# Installs them with apt when we are root on a Debian/Ubuntu machine; otherwise prints the command.
set -u
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
