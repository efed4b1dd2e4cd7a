# Developer entry points. Every target bootstraps first (fast when nothing changed).
#   make test       the test suite (the README's test command; CI runs it via .ci/run)
#   make demo       scaffold the fashion-mnist example in DEMO_DIR and run its whole pipeline
#   make bench      print the benchmarks' numbers
#   make templates  regenerate templates/ from the Jinja sources
#   make check      templates/ up to date, and every component passes `ci-gen lint`
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

VENV ?= .venv
PY := $(VENV)/bin/python
CIGEN := $(VENV)/bin/ci-gen
DEMO_DIR ?= .work/demo
PYTEST_ARGS ?=
# Two workers: most of the suite waits on subprocesses (pipelines, pip, servers); see conftest.py
# (the longest test groups first, hence --no-loadscope-reorder). The ten slowest tests close the run.
TEST_WORKERS ?= 2
RUN_ARGS ?=

.PHONY: bootstrap test demo bench templates check constraints

bootstrap:
	@CI_GEN_VENV="$(abspath $(VENV))" scripts/bootstrap.sh

test: bootstrap
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder --durations=10 $(PYTEST_ARGS)

# A fresh folder each time: .work/ is ours (gitignored) and is cleared; any other DEMO_DIR
# must not exist yet, so nothing of the user's is ever deleted.
demo: bootstrap
	@case "$(abspath $(DEMO_DIR))/" in \
	  "$(CURDIR)/.work/"?*) rm -rf "$(DEMO_DIR)" ;; \
	  *) if [ -e "$(DEMO_DIR)" ]; then echo "make demo: $(DEMO_DIR) exists; remove it or pick another DEMO_DIR" >&2; exit 1; fi ;; \
	esac
	$(CIGEN) init "$(DEMO_DIR)" --example fashion-mnist
	$(CIGEN) run "$(DEMO_DIR)" --manual $(RUN_ARGS)

bench: bootstrap
	@shopt -s nullglob; for f in benchmarks/*.py; do echo "== $$f"; $(PY) "$$f"; done

templates: bootstrap
	$(CIGEN) build

check: bootstrap
	$(CIGEN) build --check
	@for f in templates/*.yml; do $(CIGEN) lint "$$f"; done

# Re-pin constraints.txt from the current venv (after pyproject.toml's dependencies changed
# and the venv was installed and tested).
constraints:
	@{ sed -n '/^#/p' constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -vi -e '^ci-gen==' -e '^#'; } > constraints.txt.new
	@mv constraints.txt.new constraints.txt
	@echo "constraints.txt: $$(grep -vc '^#' constraints.txt) pins"
