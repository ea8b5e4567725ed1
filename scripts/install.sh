#!/usr/bin/env bash
# From-scratch install: system tools (DIAMOND, MMseqs2, tcmalloc), the virtual environment, pinned Python packages.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

need_apt=()
command -v diamond >/dev/null 2>&1 || need_apt+=(diamond-aligner)
command -v mmseqs >/dev/null 2>&1 || need_apt+=(mmseqs2)  # engine: mmseqs2 (homology, reference)
ls /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 >/dev/null 2>&1 || need_apt+=(libtcmalloc-minimal4)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get install -y -q "${need_apt[@]}" >/dev/null 2>&1 \
    || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q "${need_apt[@]}" >/dev/null; } \
    || echo "warning: could not install ${need_apt[*]} (no root/sudo?): the homology member needs DIAMOND" \
            "and MMseqs2 (engine: mmseqs2); install them with 'sudo apt-get install diamond-aligner mmseqs2' or" \
            "'conda install -c bioconda diamond mmseqs2'." >&2
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
"$VENV/bin/python" -m pip install -q torch==2.13.0
"$VENV/bin/python" -m pip install -q -r requirements.txt
"$VENV/bin/python" -m pip install -q -e ".[test,ray]"  # ray: `cafa predict --engine ray` (tests use it)
touch "$VENV/.installed"
echo "installed into $VENV"
