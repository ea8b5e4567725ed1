#!/usr/bin/env bash
# The reference member's default database: Swiss-Prot 2014-01 with GO annotations of every evidence kind
# (Debian's metastudent-data, 225 MB download) and NCBI BLAST+'s blastdbcmd to read it. Optional: without it
# the main chain skips the reference member with a one-line notice. Not needed by `make test`.
set -euo pipefail
need_apt=()
[ -d /usr/share/metastudent-data/dataset_201401 ] || need_apt+=(metastudent-data)
command -v blastdbcmd >/dev/null 2>&1 || need_apt+=(ncbi-blast+)
[ ${#need_apt[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing Debian packages: ${need_apt[*]} (the reference database, ~780 MB installed)"
$SUDO apt-get install -y -q "${need_apt[@]}" >/dev/null 2>&1 \
  || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q "${need_apt[@]}" >/dev/null; } \
  || echo "warning: could not install ${need_apt[*]}: the main job runs without the reference member;" \
          "install them with 'sudo apt-get install metastudent-data ncbi-blast+' or point params.yaml" \
          "reference.databases at a UniProt .dat / GAF (docs/reference.md)." >&2
