#!/usr/bin/env bash
# Print the Debian mirror this machine's apt already uses: the first URI that serves the host's
# release suite (deb822 *.sources or one-line *.list). T2S_APT_MIRROR overrides it. Used by
# install-apptainer.sh (private apt for sid) and build-image.sh (debootstrap's MirrorURL).
set -euo pipefail
if [[ -n ${T2S_APT_MIRROR:-} ]]; then
  echo "$T2S_APT_MIRROR"
  exit 0
fi
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[[ -n $codename ]] || { echo "apt-mirror: no VERSION_CODENAME in /etc/os-release" >&2; exit 1; }
shopt -s nullglob
mirror=$(
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    # deb [options] URI SUITE COMPONENTS...
    awk -v c="$codename" '$1 == "deb" {
      i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
      if ($(i + 1) == c) { print $i; exit } }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    # deb822 stanzas: Types / URIs / Suites fields, stanzas separated by blank lines
    awk -v c="$codename" 'BEGIN { RS = ""; FS = "\n" } {
      types = ""; uris = ""; suites = ""
      for (j = 1; j <= NF; j++) {
        if ($j ~ /^Types:/) { types = $j; sub(/^Types:[ \t]*/, "", types) }
        if ($j ~ /^URIs:/) { uris = $j; sub(/^URIs:[ \t]*/, "", uris) }
        if ($j ~ /^Suites:/) { suites = $j; sub(/^Suites:[ \t]*/, "", suites) }
      }
      if ((" " types " ") ~ / deb / && (" " suites " ") ~ (" " c " ")) {
        split(uris, u, " "); print u[1]; exit } }' "$f"
  done | head -n 1
)
[[ -n $mirror ]] || { echo "apt-mirror: no apt source for $codename found; set T2S_APT_MIRROR" >&2; exit 1; }
echo "${mirror%/}"
