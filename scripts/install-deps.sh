#!/usr/bin/env bash
# Installs the Debian 12 packages dprobe needs to build and test, when they are missing.
# Runs apt-get only when something is missing; as non-root it says what to install instead.
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config make binutils
  libzydis-dev libelf-dev libdw-dev libfmt-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev systemtap-sdt-dev
  python3 python3-pytest
  # the lang fuzzer (libFuzzer needs clang; GCC has none), run by `make test`
  clang libclang-rt-14-dev
  # libc's separate debug symbols: ustack names libc's internal frames (__libc_start_call_main,
  # start_thread) from them, as bpftrace does; without them those frames print as addresses
  libc6-dbg
)
# bpftrace is the reference the e2e suite compares against side by side (skipped when absent).
if [[ "${DPROBE_WITH_BPFTRACE:-1}" == 1 ]]; then packages+=(bpftrace); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "dprobe needs these Debian packages: ${missing[*]}" >&2
  echo "run as root: apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
