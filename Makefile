# flowaccent: every target bootstraps .venv on a fresh machine (only python3 needed).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-lower demo bench bench-install bench-peers clean

install: $(STAMP)

# torch==2.13.0 first: the CPU wheel present on these machines. Any other torch
# requirement would pull several GB of CUDA wheels.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test,demo]'
	touch $@

# One pytest worker per core (pytest-xdist), each test file on one worker (its module fixtures built once),
# the longest files first (tests/conftest.py's LONGEST_FIRST, in that order: --no-loadscope-reorder),
# one thread per worker (tests/conftest.py): 8-11 min on a 2-core AMD EPYC where one process took 14-15.
# TEST_JOBS=0: one process.
TEST_JOBS ?= auto

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder

# The suite against the lowest version of each dependency pyproject.toml allows (.ci/lower-bounds.txt), in a venv of
# its own (torch stays 2.13.0: see that file). Not part of `make test` (CI): 7.5-14 min from a fresh clone
# on 2 cores (14 min on the Intel Xeon of 2026-12-06; 26 min beside other work on 2026-12-07). The recipes run with
# its venv active (their path.sh takes an active venv that has flowaccent; a fresh clone has no .venv).
LOWER := .venv-lower
test-lower: pyproject.toml .ci/lower-bounds.txt
	test -x $(LOWER)/bin/python || $(PYTHON) -m venv $(LOWER)
	$(LOWER)/bin/python -m pip install --quiet torch==2.13.0
	$(LOWER)/bin/python -m pip install --quiet -c .ci/lower-bounds.txt -e '.[test,demo]'
	VIRTUAL_ENV=$(CURDIR)/$(LOWER) PATH="$(CURDIR)/$(LOWER)/bin:$$PATH" \
	  $(LOWER)/bin/python -m pytest -q -n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder

demo: $(STAMP)
	cd recipes/demo && PATH="$(CURDIR)/$(BIN):$$PATH" bash run.sh

# Every table of docs/performance.md in one run (67-98 min on 2 cores in the runs so far); peers need bench-install.
bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# Optional peers (zuko, normflows) for bench-peers; both accept the torch already installed.
bench-install: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,demo,bench]'

bench-peers: bench-install
	$(BIN)/python benchmarks/bench_peers.py

clean:
	rm -rf $(VENV) $(LOWER) .pytest_cache recipes/*/exp build  # build/: a wheel built here kept files since removed
