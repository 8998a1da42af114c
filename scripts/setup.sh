#!/usr/bin/env bash
# Installs the Debian packages nagare needs, only those missing.
# Idempotent; prints nothing when everything is already there.
set -euo pipefail

packages=(
  # build
  build-essential cmake pkg-config git
  # libraries (DESIGN.md section 11)
  liburing-dev libboost-dev flatbuffers-compiler libflatbuffers-dev libxxhash-dev
  libmimalloc-dev libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev
  libtomlplusplus-dev libspdlog-dev libfmt-dev
  # gateway (Boost.Beast comes with libboost-dev): JWT, JSON
  libjwt-dev nlohmann-json3-dev
  # browser and WebSocket tests of the gateway (playwright-core, ws from npm)
  chromium nodejs npm
  # tooling: fuzzing, disk reference figures, formatting
  afl++ fio clang-format
)

missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing packages: ${missing[*]} (run as root, or install them with apt-get)" >&2
  exit 1
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
