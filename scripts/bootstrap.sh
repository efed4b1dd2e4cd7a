#!/usr/bin/env bash
# Set up everything ci-gen's tests, demo and local pipeline runs need on a Debian 12 machine:
#   1. Debian packages (rsync, buildah, docker-registry, htpasswd, git, ssh), only when missing;
#   2. the Python venv (.venv) with ci-gen editable and its extras, pinned by constraints.txt;
#   3. gitlab-ci-local from package-lock.json (npm ci) into node_modules/.
# Idempotent: steps 2 and 3 are skipped while a stamp (a hash of their inputs) is current, so
# a second run takes well under a second. Works on an existing .venv: pip only adds what lacks.
#
# Environment: CI_GEN_VENV (default: <repo>/.venv), CI_GEN_EXTRAS (default: dvc,example,monitor,test),
# PYTHON (default: python3), CI_GEN_SKIP_APT=1 (never touch Debian packages),
# CI_GEN_VENV_READONLY=1 (use CI_GEN_VENV as it is: fail instead of installing into it; for a
# job that borrows another checkout's venv, which must never be re-pointed at the job's tree).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CI_GEN_VENV:-$ROOT/.venv}"
EXTRAS="${CI_GEN_EXTRAS:-dvc,example,monitor,test}"
PYTHON="${PYTHON:-python3}"
START=$SECONDS

log() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }

hash_of() {
    # Hash of the given files' contents plus extra words, so any change re-runs the step.
    local extra="$1"; shift
    { printf '%s\n' "$extra"; cat "$@" 2>/dev/null; } | sha256sum | cut -d' ' -f1
}

# --- 1. Debian packages ------------------------------------------------------------------
# command:package pairs; a package is installed only when its command is missing.
# podman + runc: the deploy target of the deploy tests (its API service), sshd and socat: the
# same over ssh and TLS, busybox-static: the httpd in their FROM scratch images.
DEBIAN_NEEDS=(rsync:rsync buildah:buildah docker-registry:docker-registry
              htpasswd:apache2-utils git:git ssh:openssh-client make:make
              podman:podman runc:runc sshd:openssh-server socat:socat openssl:openssl
              busybox:busybox-static prometheus:prometheus)
missing=()
for pair in "${DEBIAN_NEEDS[@]}"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ "${#missing[@]}" -eq 0 ]; then
    log "debian packages: present"
elif [ "${CI_GEN_SKIP_APT:-}" = "1" ]; then
    log "debian packages missing but CI_GEN_SKIP_APT=1: ${missing[*]}"
else
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "missing Debian packages (${missing[*]}); run: apt-get install ${missing[*]}"
        SUDO="sudo"
    fi
    log "debian packages: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
    log "debian packages: installed (${missing[*]})"
fi

# --- 2. Python venv ----------------------------------------------------------------------
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (Python 3.10+ is needed)"
PY_STAMP="$VENV/.ci-gen-bootstrap"
py_hash="$(hash_of "extras=$EXTRAS $("$PYTHON" -c 'import sys; print(sys.version)')" \
    "$ROOT/pyproject.toml" "$ROOT/constraints.txt")"
if [ -x "$VENV/bin/python" ] && [ -f "$PY_STAMP" ] && [ "$(cat "$PY_STAMP")" = "$py_hash" ] \
        && "$VENV/bin/python" -c 'import ci_gen' >/dev/null 2>&1; then
    log "python venv: up to date ($VENV)"
elif [ "${CI_GEN_VENV_READONLY:-}" = "1" ]; then
    die "python venv $VENV is not up to date for $ROOT (CI_GEN_VENV_READONLY=1: nothing installed; run scripts/bootstrap.sh in the venv's own checkout)"
else
    if [ ! -x "$VENV/bin/python" ]; then
        log "python venv: creating $VENV"
        if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
            # Debian's python3 needs python3-venv for ensurepip.
            [ "${CI_GEN_SKIP_APT:-}" = "1" ] && die "$PYTHON -m venv failed (install python3-venv)"
            log "python venv: installing python3-venv"
            DEBIAN_FRONTEND=noninteractive apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            "$PYTHON" -m venv "$VENV"
        fi
    fi
    log "python venv: pip install -e '.[$EXTRAS]' (pinned by constraints.txt)"
    t0=$SECONDS
    # This machine's pip.conf lists local indexes that lack most packages: drop pip's
    # per-package "Location ... is ignored" warnings, and the old pip of Debian's venv its
    # "legacy setup.py install" deprecation notes (one per sdist); keep everything else.
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install --quiet \
        -c "$ROOT/constraints.txt" -e "${ROOT}[${EXTRAS}]" 2>&1 \
        | { grep -v -e "is ignored: it is neither a file nor a directory" \
                    -e "^  DEPRECATION: .* is being installed using the legacy 'setup.py install' method" || true; }
    printf '%s\n' "$py_hash" > "$PY_STAMP"
    log "python venv: ready in $((SECONDS - t0)) s"
fi

# --- 3. gitlab-ci-local (npm) ------------------------------------------------------------
command -v npm >/dev/null 2>&1 || die "npm not found (Node.js 20 with npm is needed for gitlab-ci-local)"
NODE_STAMP="$ROOT/node_modules/.ci-gen-bootstrap"
node_hash="$(hash_of "node=$(node --version)" "$ROOT/package.json" "$ROOT/package-lock.json")"
if [ -x "$ROOT/node_modules/.bin/gitlab-ci-local" ] && [ -f "$NODE_STAMP" ] \
        && [ "$(cat "$NODE_STAMP")" = "$node_hash" ]; then
    log "node packages: up to date (gitlab-ci-local)"
else
    log "node packages: npm ci"
    t0=$SECONDS
    (cd "$ROOT" && npm ci --no-audit --no-fund --no-update-notifier --loglevel=error >/dev/null)
    printf '%s\n' "$node_hash" > "$NODE_STAMP"
    log "node packages: gitlab-ci-local $("$ROOT/node_modules/.bin/gitlab-ci-local" --version) in $((SECONDS - t0)) s"
fi

log "done in $((SECONDS - START)) s"
