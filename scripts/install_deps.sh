#!/usr/bin/env bash
# Installs the Debian packages Tandem builds with. Idempotent, and fast when nothing is
# missing: it asks dpkg first and only runs apt-get for what is absent.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git python3
  libopenblas-dev libprotobuf-dev protobuf-compiler libspdlog-dev libboost-dev
  libucx-dev ucx-utils libgtest-dev libgmock-dev nlohmann-json3-dev libcli11-dev libpcre2-dev
  libutf8proc-dev clang libclang-rt-14-dev curl libcairo2-dev libssl-dev
  prometheus-cpp-dev prometheus
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install_deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Debian starts the prometheus service on install where systemd runs; tests start their own on
# 127.0.0.1 with their own configuration, so the system one is not wanted.
if [[ " ${missing[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
  $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
