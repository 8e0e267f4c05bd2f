#!/usr/bin/env bash
# `npm run test:all`: installs everything the tests need, then runs the whole
# suite (lint and format, types, tests on the embedded database and on a real
# PostgreSQL server that the test runner starts on a free loopback port).
# For a fresh Debian/Ubuntu machine with Node.js 22.18+; uses sudo when not root.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>22||(a===22&&b>=18)?0:1)'; then
  echo "test:all: Parley needs Node.js 22.18 or newer (this is $(node --version))" >&2
  exit 1
fi

# Debian packages the tests use: PostgreSQL servers (started by the tests, never the system's cluster), and for
# the partitioned cluster PL/Proxy, PgQ with its ticker, and pgBouncer; iproute2 and iptables for the NAT test;
# espeak-ng, sox and coturn for calls; ClamAV's clamd for virus scanning of received files.
missing=()
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
pgversion=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)
pgversion=${pgversion:-15}
[ -f "/usr/lib/postgresql/$pgversion/lib/plproxy.so" ] || missing+=("postgresql-$pgversion-plproxy")
[ -f "/usr/share/postgresql/$pgversion/extension/pgq.control" ] || missing+=("postgresql-$pgversion-pgq3")
command -v pgqd >/dev/null || missing+=(pgqd)
[ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
command -v runuser >/dev/null || missing+=(util-linux)
# The NAT test builds its own network in Linux network namespaces (veth, bridge, iptables MASQUERADE).
command -v ip >/dev/null || missing+=(iproute2)
command -v iptables >/dev/null || missing+=(iptables)
# Calls: speech for the audio tests (espeak-ng, sox), and a TURN server the tests start themselves (coturn).
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
command -v sox >/dev/null || missing+=(sox)
command -v turnserver >/dev/null || missing+=(coturn)
# Files: the scanning tests start their own clamd (own config, socket and signature file: no freshclam, no download).
[ -x /usr/sbin/clamd ] || command -v clamd >/dev/null || missing+=(clamav clamav-daemon)
# The web client's tests drive Debian's Chromium through playwright-core (never a downloaded browser); an emoji font
# makes their screenshots show emoji rather than empty boxes.
command -v chromium >/dev/null || missing+=(chromium)
compgen -G '/usr/share/fonts/truetype/noto/NotoColorEmoji*' >/dev/null || missing+=(fonts-noto-color-emoji)
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "test:all: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's coturn package may start a system TURN server: the tests run their own, so it is stopped and disabled.
  if [[ " ${missing[*]} " == *" coturn "* ]] && command -v systemctl >/dev/null; then
    $sudo systemctl disable --now coturn >/dev/null 2>&1 || true
  fi
  # Likewise ClamAV's system clamd (and its socket unit) and freshclam, which would try to download signatures.
  if [[ " ${missing[*]} " == *" clamav-daemon "* ]] && command -v systemctl >/dev/null; then
    $sudo systemctl disable --now clamav-daemon.socket clamav-daemon clamav-freshclam >/dev/null 2>&1 || true
  fi
fi

npm ci --no-audit --no-fund
# The web client the daemons serve (and the browser tests use), built from this checkout.
npm run build
npm run lint
# Types: the packages, then the web client with its own compiler settings (DOM, JSX).
npm run typecheck
npm test
