#!/usr/bin/env bash
# Software OpenGL for MuJoCo's headless rendering on Debian/Ubuntu.
# EGL (default, MUJOCO_GL=egl): libegl1 libgl1-mesa-dri libegl-mesa0 libgbm1 libopengl0 (PyOpenGL loads libOpenGL.so.0)
# OSMesa (MUJOCO_GL=osmesa):    libosmesa6
# Installs what is missing when running as root with apt-get; otherwise stops and names them.
set -euo pipefail
backend="${MUJOCO_GL:-egl}"
case "$backend" in
  egl) pkgs="libegl1 libgl1-mesa-dri libegl-mesa0 libgbm1 libopengl0" ;;
  osmesa) pkgs="libosmesa6" ;;
  glfw) echo "MUJOCO_GL=glfw needs a display; use egl or osmesa on a headless machine" >&2; exit 1 ;;
  *) echo "unknown MUJOCO_GL=$backend (use egl or osmesa)" >&2; exit 1 ;;
esac
if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "[recore-dist] not a Debian system: make sure these (or equivalents) are installed for MUJOCO_GL=$backend: $pkgs" >&2
  exit 0
fi
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "[recore-dist] installing software OpenGL for MuJoCo:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $missing
else
  echo "[recore-dist] MuJoCo rendering (MUJOCO_GL=$backend) needs these Debian packages:$missing" >&2
  echo "  install them with: sudo apt-get install -y$missing" >&2
  echo "  (or use MUJOCO_GL=osmesa with libosmesa6)" >&2
  exit 1
fi
