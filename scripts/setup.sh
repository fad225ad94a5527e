#!/usr/bin/env bash
# Installs everything backlog-gitops needs, from the package registries only, into local folders:
#   .venv/ (Python), node_modules/ (cdk8s CLI), .tools/bin/ (Go-built tools), Debian packages (prometheus, nats-server, shellcheck).
# Idempotent: a tool already present at its pinned version is not reinstalled.
#   scripts/setup.sh          runtime (synth)
#   scripts/setup.sh --test   plus test tooling (pytest, kubeconform, actionlint, exporter, prometheus, nats-server, shellcheck)
set -euo pipefail
cd "$(dirname "$0")/.."

KUBECONFORM_VERSION=v0.7.0
ACTIONLINT_VERSION=v1.7.12
TOOLS_BIN="$PWD/.tools/bin"
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

log() { printf '[setup] %s\n' "$*"; }

# Python: a venv with the project installed editable; reinstall only when pyproject.toml changed.
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)-$want_test"
if [ ! -f "$stamp" ]; then
  extras=""
  [ "$want_test" = 1 ] && extras="[test]"
  log "installing Python packages${extras}"
  .venv/bin/pip install --quiet --disable-pip-version-check -e ".${extras}"
  rm -f .venv/.installed-*
  touch "$stamp"
fi

# Node: the pinned cdk8s CLI from package-lock.json.
if [ ! -x node_modules/.bin/cdk8s ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing cdk8s CLI (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi

[ "$want_test" = 1 ] || exit 0

# Go tools, built from the Go module proxy at pinned versions.
go_tool() {  # name module version
  local name=$1 module=$2 version=$3
  if [ -x "$TOOLS_BIN/$name" ] && [ "$(cat "$TOOLS_BIN/.$name.version" 2>/dev/null)" = "$version" ]; then
    return
  fi
  log "building $name $version"
  mkdir -p "$TOOLS_BIN"
  GOBIN="$TOOLS_BIN" GOFLAGS=-mod=mod go install "$module@$version"
  echo "$version" > "$TOOLS_BIN/.$name.version"
}
go_tool kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION"
go_tool actionlint github.com/rhysd/actionlint/cmd/actionlint "$ACTIONLINT_VERSION"

# prometheus-nats-exporter for the end-to-end test, pinned by scripts/go-tools/prometheus-nats-exporter/go.mod.
exporter_mod=scripts/go-tools/prometheus-nats-exporter
exporter_pin=$(sha256sum "$exporter_mod/go.mod" "$exporter_mod/go.sum" | sha256sum | cut -c1-16)
if [ ! -x "$TOOLS_BIN/prometheus-nats-exporter" ] || [ "$(cat "$TOOLS_BIN/.prometheus-nats-exporter.version" 2>/dev/null)" != "$exporter_pin" ]; then
  log "building prometheus-nats-exporter ($(grep -o 'v[0-9.]*$' "$exporter_mod/go.mod"))"
  mkdir -p "$TOOLS_BIN"
  (cd "$exporter_mod" && go build -mod=readonly -o "$TOOLS_BIN/prometheus-nats-exporter" github.com/nats-io/prometheus-nats-exporter)
  echo "$exporter_pin" > "$TOOLS_BIN/.prometheus-nats-exporter.version"
fi

# Debian packages: promtool and prometheus (prometheus), nats-server (end-to-end test), and shellcheck, which
# actionlint runs on workflow scripts.
missing=()
{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || missing+=(prometheus)
[ -x /usr/sbin/nats-server ] || command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
log "ready"
