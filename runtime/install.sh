#!/bin/sh
# Installs the job runtime of one ci-gen release into the current Python environment:
# ci-gen[dvc,monitor] at VERSION, its wheel taken from CI_GEN_INDEX_URL only (the index the release
# published it to; no other index can answer for the name), its dependencies from the normal
# index pinned by CONSTRAINTS (the versions ci-gen's own CI tested), git, and ssh (deploy's
# ssh targets).
#
#   CI_GEN_INDEX_URL=https://.../simple sh runtime/install.sh VERSION CONSTRAINTS
#
# runtime/Dockerfile runs it to build the runtime image; tests/test_release_rehearsal.py runs
# it against a local package server into a fresh venv.
set -eu

version="${1:?usage: install.sh VERSION CONSTRAINTS}"
constraints="${2:?usage: install.sh VERSION CONSTRAINTS}"
index="${CI_GEN_INDEX_URL:?install.sh: set CI_GEN_INDEX_URL to the index ci-gen $version was published to}"

# eval-report reads the target branch with git; dvc-upload commits with it; deploy reaches
# an ssh target with ssh.
if ! command -v git >/dev/null 2>&1 || ! command -v ssh >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends git openssh-client >/dev/null
  rm -rf /var/lib/apt/lists/*
fi

wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT
python -m pip download --quiet --no-deps --only-binary=:all: --index-url "$index" --dest "$wheels" "ci-gen==$version"
python -m pip install --quiet -c "$constraints" "$(ls "$wheels"/ci_gen-*.whl)[dvc,monitor]"
ci-gen --version
