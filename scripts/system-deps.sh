#!/usr/bin/env bash
# Install the system pieces the tests and benchmarks need on Debian: PostgreSQL (server, contrib for
# btree_gist), the TimescaleDB extension for the local PostgreSQL major, Mosquitto, and the CJK font the PDF
# invoices embed (fonts-wqy-zenhei: a TrueType collection reportlab can use).
# Idempotent: each step is skipped when its piece is already there, so a warm machine pays nothing.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

log() { printf '[system-deps] %s\n' "$*"; }

apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

need=()
for p in postgresql postgresql-contrib mosquitto fonts-wqy-zenhei chromium fonts-noto-cjk; do have_pkg "$p" || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt_install "${need[@]}"
fi

pg_major=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
pg_config="/usr/lib/postgresql/$pg_major/bin/pg_config"
ext_dir="$($pg_config --sharedir)/extension"

if ls "$ext_dir"/timescaledb--*.sql >/dev/null 2>&1; then
  log "TimescaleDB already installed for PostgreSQL $pg_major"
  exit 0
fi

# A binary package where apt has one for this major (Debian 13 and later).
if [ "$apt_updated" -eq 0 ]; then $SUDO apt-get update -qq; apt_updated=1; fi
if apt-cache policy "postgresql-$pg_major-timescaledb" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
  log "installing postgresql-$pg_major-timescaledb"
  apt_install "postgresql-$pg_major-timescaledb"
  exit 0
fi

# Otherwise build Debian trixie's source package (Apache-2 edition) against the local server.
log "building TimescaleDB from Debian's trixie source package for PostgreSQL $pg_major"
apt_install "postgresql-server-dev-$pg_major" cmake dpkg-dev gcc make

mirror=""
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  mirror=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
  mirror=$(awk '$1=="deb" && $0 !~ /security/ {for(i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; exit}}' /etc/apt/sources.list)
fi
mirror=${mirror:-http://deb.debian.org/debian}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/src"
cat >"$work/trixie-src.sources" <<SRC
Types: deb-src
URIs: $mirror
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
# A private sources list and lists directory: the machine's own apt state stays untouched.
apt_private=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$work" -o "Dir::State::Lists=$work/lists" -o "APT::Sandbox::User=root")
$SUDO apt-get "${apt_private[@]}" update -qq
(cd "$work/src" && apt-get "${apt_private[@]}" source -qq timescaledb >/dev/null)
srcdir=$(find "$work/src" -maxdepth 1 -mindepth 1 -type d -name 'timescaledb-*' | head -n 1)
(
  cd "$srcdir"
  ./bootstrap -DPG_CONFIG="$pg_config" -DAPACHE_ONLY=ON -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF \
    -DWARNINGS_AS_ERRORS=OFF -DUSE_OPENSSL=OFF >/dev/null
  make -s -C build -j"$(nproc)" >/dev/null
  $SUDO make -s -C build install >/dev/null
)
log "TimescaleDB $(sed -n "s/^default_version = .\(.*\)./\1/p" "$ext_dir/timescaledb.control") installed for PostgreSQL $pg_major"
