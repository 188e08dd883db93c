#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages the build and the tests need. Idempotent:
# when everything is present it does nothing. As a non-root user with packages
# missing it prints the apt-get command to run instead of running it.
#   scripts/setup.sh          what building and running rwkv needs
#   scripts/setup.sh --test   also what the test suite needs (PyTorch for the
#                             independent reference model in tests/reference/)
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libopenmpi-dev openmpi-bin
  libhdf5-openmpi-dev hdf5-tools
  libyaml-cpp-dev libboost-program-options-dev
  libgtest-dev libbenchmark-dev
  libopenblas-dev
  libsentencepiece-dev sentencepiece
  zlib1g-dev libssl-dev nlohmann-json3-dev
  # The demo: a multilingual corpus available offline (fortune files in German,
  # Russian, Chinese, Spanish, Italian, Polish, Czech) and the loss-curve plot.
  fortunes-de fortunes-ru fortunes-zh fortunes-es fortunes-it fortunes-pl fortunes-cs
  python3 python3-matplotlib
)
if [[ "${1:-}" == "--test" ]]; then
  # Debian's own python3 (/usr/bin/python3) runs these.
  PACKAGES+=(python3 python3-torch python3-h5py python3-numpy)
  # A one-node Slurm for the sbatch tests (scripts/slurm_local.sh).
  PACKAGES+=(slurm-wlm munge)
  # The fibers that run the CUDA kernels' threads on the CPU (tests/kernels/cuda_emulation/).
  PACKAGES+=(libboost-context-dev)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  # dpkg-query prints "install ok installed" only for a fully installed package.
  if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != "install ok installed" ]]; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
  echo "setup: missing packages: ${missing[*]}" >&2
  echo "setup: run as root (or with sudo):  apt-get update && $cmd" >&2
  exit 1
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
