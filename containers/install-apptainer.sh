#!/usr/bin/env bash
# Install a real `apptainer` on a Debian host that has no package for it (`make apptainer`, root).
#
# * An `apptainer` already on PATH (a site install) is used as it is: nothing is done.
# * An earlier install of this script (the prefix) is reused: a no-op in well under a second.
# * Otherwise: Debian sid's source package (Debian's patches applied), built in GOPATH mode
#   against sid's Go toolchain and Go library packages, unpacked (dpkg-deb -x) into a private
#   root. A private apt configuration (own sources list, state and cache dirs under $WORK) adds
#   sid with deb-src on the mirror the host's apt already uses; /etc/apt is never changed.
#   Host packages (apt-get install): the C toolchain, libseccomp-dev, squashfs-tools,
#   debootstrap, ... (what the build and `Bootstrap: debootstrap` images need).
#
# This machine kind's quirk: root lacks CAP_SYS_RESOURCE in its bounding set, and apptainer's
# starter asks for every capability (build %post, and exec with the default `root default
# capabilities = full`), which fails. apptainer-starter-caps.patch makes the starter request only
# what root holds, and only when it would otherwise fail; apptainer.conf stays as shipped.
#
# Settings (environment): T2S_APPTAINER_PREFIX (/opt/t2s-apptainer), T2S_APPTAINER_LINK
# (/usr/local/bin/apptainer), T2S_APPTAINER_WORK
# (/var/cache/t2s-apptainer: downloads, private root, build tree), T2S_APT_MIRROR.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PREFIX=${T2S_APPTAINER_PREFIX:-/opt/t2s-apptainer}
WORK=${T2S_APPTAINER_WORK:-/var/cache/t2s-apptainer}
SUITE=sid        # the suite with the apptainer source package and a Go that runs on bookworm
LINK=${T2S_APPTAINER_LINK:-/usr/local/bin/apptainer}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
HOST_PACKAGES=(build-essential dpkg-dev pkg-config libseccomp-dev libseccomp2 libsqlite3-0
  squashfs-tools uidmap cryptsetup-bin debootstrap fuse2fs libfuse3-dev e2fsprogs)

log() { printf '[apptainer] %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# ---- fast paths: an apptainer on PATH, or this script's earlier install -----------------------
if command -v apptainer >/dev/null 2>&1; then
  log "using $(command -v apptainer) as it is"
  exit 0
fi
if [[ -x $PREFIX/bin/apptainer && -f $PREFIX/.t2s-installed ]]; then
  ln -sfn "$PREFIX/bin/apptainer" "$LINK"
  log "reusing $PREFIX ($(cat "$PREFIX/.t2s-installed")); linked $LINK"
  exit 0
fi
((EUID == 0)) || die "run as root (installs host packages and $PREFIX), or install apptainer yourself"
[[ -r /etc/debian_version ]] || die "not a Debian host: install apptainer from your distribution"
start=$SECONDS

# ---- 1. host packages -------------------------------------------------------------------------
missing=()
for p in "${HOST_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"; }
  install "${missing[@]}" >/dev/null || { apt-get update -q >/dev/null && install "${missing[@]}" >/dev/null; }
fi

# ---- 2. a private apt for sid -----------------------------------------------------------------
MIRROR=$("$HERE/apt-mirror.sh")
APT=$WORK/apt
mkdir -p "$APT"/etc/{apt.conf.d,preferences.d,sources.list.d} "$APT"/state/lists/partial \
  "$APT"/cache/archives/partial
touch "$APT/state/status" # empty: nothing counts as installed, so closures are complete
cat >"$APT/etc/sources.list" <<EOF
deb [signed-by=$KEYRING] $MIRROR $SUITE main
deb-src [signed-by=$KEYRING] $MIRROR $SUITE main
EOF
APT_OPTS=(-o "Dir::Etc=$APT/etc" -o "Dir::Etc::SourceList=$APT/etc/sources.list"
  -o "Dir::Etc::SourceParts=$APT/etc/sources.list.d" -o "Dir::Etc::Parts=$APT/etc/apt.conf.d"
  -o "Dir::Etc::PreferencesParts=$APT/etc/preferences.d" -o "Dir::State=$APT/state"
  -o "Dir::State::status=$APT/state/status" -o "Dir::Cache=$APT/cache"
  -o APT::Sandbox::User=root -o Acquire::Languages=none -o APT::Architecture=amd64
  -o APT::Architectures::=amd64)
log "private apt: $MIRROR $SUITE (state in $APT)"
apt-get "${APT_OPTS[@]}" -q update >/dev/null

# ---- 3. the source package --------------------------------------------------------------------
GOSRC=$WORK/gopath/src/github.com/apptainer/apptainer # GOPATH layout the build expects
mkdir -p "$WORK/dl"
(cd "$WORK/dl" && apt-get "${APT_OPTS[@]}" -q source --download-only apptainer >/dev/null)
DSC=$(ls -t "$WORK"/dl/apptainer_*.dsc | head -n 1)
VERSION=$(awk '/^Version:/ {print $2}' "$DSC")
UPSTREAM=${VERSION%-*}
rm -rf "$GOSRC" && mkdir -p "$(dirname "$GOSRC")"
dpkg-source --no-check -x "$DSC" "$GOSRC" >/dev/null
# Ours, on top of Debian's: the starter trims the capabilities it requests to those root holds.
patch -s -p1 -d "$GOSRC" <"$HERE/apptainer-starter-caps.patch"
log "source apptainer $VERSION unpacked with Debian's patches and ours"

# ---- 4. Go toolchain + Go libraries: the golang-* closure of the build deps, unpacked ------------
deps=$(awk '/^Build-Depends:/ {sub(/^Build-Depends:/, ""); print; exit}' "$DSC" | tr ',' '\n' |
  sed -E 's/\(.*\)//; s/\|.*//; s/\[.*\]//; s/<.*>//; s/:any//; s/^ +| +$//g' | grep -E '^golang-')
# shellcheck disable=SC2086
closure=$(apt-cache "${APT_OPTS[@]}" depends --recurse --no-recommends --no-suggests \
  --no-conflicts --no-breaks --no-replaces --no-enhances $deps |
  grep -v -e '^ ' -e '^<' | grep -E '^golang-' | sort -u)
ROOT=$WORK/root
log "$(wc -w <<<"$closure") golang-* packages -> $ROOT"
mkdir -p "$WORK/debs" && cd "$WORK/debs"
# shellcheck disable=SC2086
apt-get "${APT_OPTS[@]}" -q download $closure >/dev/null
rm -rf "$ROOT" && mkdir -p "$ROOT"
for deb in "$WORK"/debs/*.deb; do dpkg-deb -x "$deb" "$ROOT"; done
GOBIN_DIR=$(ls -d "$ROOT"/usr/lib/go-1.*/bin | sort -V | tail -n 1)

# ---- 5. build and install ---------------------------------------------------------------------
export PATH="$GOBIN_DIR:$PATH" GOPATH="$WORK/gopath:$ROOT/usr/share/gocode" GO111MODULE=off \
  GOPROXY=off GOTOOLCHAIN=local GOFLAGS= GOCACHE="$WORK/gocache" HOME="$WORK"
log "building with $(go version) (4-6 minutes on 2 cores)"
cd "$GOSRC"
[[ -e VERSION ]] || echo "$UPSTREAM" >VERSION
./mconfig -b builddir -V "$UPSTREAM" --prefix="$PREFIX" --without-network --without-suid >"$WORK/mconfig.log" 2>&1 ||
  { tail -n 30 "$WORK/mconfig.log" >&2; die "mconfig failed (log: $WORK/mconfig.log)"; }
# Command-line variables override the generated Makefile's module mode and proxy (as Debian does).
GOVARS=(GO111MODULE=off GOPROXY=off GO_MODFLAGS= GOFLAGS=-trimpath)
make -C builddir -j"$(nproc)" "${GOVARS[@]}" >"$WORK/build.log" 2>&1 ||
  { tail -n 30 "$WORK/build.log" >&2; die "build failed (log: $WORK/build.log)"; }
rm -rf "$PREFIX"
make -C builddir "${GOVARS[@]}" install >"$WORK/install.log" 2>&1 ||
  { tail -n 30 "$WORK/install.log" >&2; die "install failed (log: $WORK/install.log)"; }

# ---- 6. done: the marker makes the next run a no-op
echo "$VERSION built $(date -u +%FT%TZ)" >"$PREFIX/.t2s-installed"
ln -sfn "$PREFIX/bin/apptainer" "$LINK"
log "installed $("$LINK" --version) in $PREFIX, linked $LINK ($((SECONDS - start)) s)"
