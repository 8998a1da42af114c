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
  # browser tests of the gateway (Node.js and npm: see below)
  chromium
  # benchmark peers (issue 7): NATS JetStream and Redis Streams, and their C clients
  nats-server redis-server libnats-dev libhiredis-dev
  # tooling: fuzzing, disk reference figures, formatting
  afl++ fio clang-format
)

missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# Node.js with npm (playwright-core, ws): the machine's own when it has one
# (its nodejs package may bundle npm, which then conflicts with Debian's npm).
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

# The Node.js test packages (tests/package-lock.json), once per lock change.
install_node_packages() {
  local dir
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests"
  if ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.nagare-lock" 2>/dev/null; then
    echo "setup: npm ci in tests/"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    cp "$dir/package-lock.json" "$dir/node_modules/.nagare-lock"
  fi
}
[ ${#missing[@]} -eq 0 ] && { install_node_packages; exit 0; }

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing packages: ${missing[*]} (run as root, or install them with apt-get)" >&2
  exit 1
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
install_node_packages
