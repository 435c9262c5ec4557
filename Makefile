# Two commands matter: `make run` and `make test`. Both work on a fresh
# Debian machine that has only python3 (they install what is missing).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG := var/fapiao-agent.toml

.PHONY: run test venv test-deps bench clean

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3 -m venv failed; installing Debian's python3-venv"; \
	  apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && \
	  $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip

# The OCR extra's OpenCV links Debian's libGL and GLib, which a minimal
# server lacks; without them scans are read through their QR code only.
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[ocr]'
	@$(BIN)/python -c 'import cv2' 2>/dev/null || { \
	  echo "OpenCV (for OCR) lacks system libraries; installing Debian's libgl1 libglib2.0-0"; \
	  apt-get update -qq && apt-get install -y -qq libgl1 libglib2.0-0 >/dev/null; } || \
	  echo "note: OCR unavailable (OpenCV cannot load); scans will be read through their QR code only"
	touch $@

venv: $(VENV)/.installed

$(CONFIG): | $(VENV)/.installed
	$(BIN)/fapiao-agent config init $(CONFIG)

# The CLI lives in the venv, not on PATH: say how to reach it before the
# daemon takes this terminal. Without --config it finds $(CONFIG) from this
# folder or any folder below it.
run: $(VENV)/.installed $(CONFIG)
	@echo "fapiao-agent is installed in $(BIN)/. In another terminal, in $(CURDIR) or a folder below it:"
	@echo "  $(BIN)/fapiao-agent status              the CLI by its path, or"
	@echo "  source $(BIN)/activate                  then simply: fapiao-agent status"
	@echo "  eval \"\$$(_FAPIAO_AGENT_COMPLETE=bash_source fapiao-agent)\"   tab completion (after activate)"
	@echo "Starting the agent in the foreground (Ctrl-C stops it):"
	$(BIN)/fapiao-agent --config $(CONFIG) run

# Debian packages only the tests need, installed in one apt-get run when any
# is missing (one `apt-get update`, the slow part on a clean machine):
# - fonts-wqy-microhei: the generated scans draw their Chinese with a real
#   CJK font, so OCR tests read them as they would a scanner's output;
# - systemd: systemd-analyze checks the unit files;
# - chromium: the weekly report's page is rendered headless, screenshot and
#   its DOM read back (tests/integration/test_report_browser.py).
# A package that cannot be installed leaves its tests skipped, with the reason.
DEBIAN_TEST_PKGS := fonts-wqy-microhei systemd chromium

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[ocr,test]'
	touch $@

test-deps: $(VENV)/.installed-test
	@missing=$$(for p in $(DEBIAN_TEST_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian packages for the tests: $$missing"; \
	    { apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; } || \
	      echo "note: could not install $$missing; the tests that need them will skip"; \
	  fi
	@$(MAKE) -s $(PROMTOOL) || echo "note: promtool unavailable; the alert rules are checked without it"

# promtool checks docs/monitoring/alerts.yml. It comes only in Debian's
# prometheus package, whose install would start a Prometheus server: the
# package is downloaded and unpacked under the venv instead, nothing started.
PROMTOOL := $(VENV)/prometheus/usr/bin/promtool
$(PROMTOOL):
	@command -v promtool >/dev/null && exit 0; \
	  tmp=$$(mktemp -d) && cd $$tmp && \
	  { apt-get download prometheus >/dev/null 2>&1 || \
	    { apt-get update -qq && apt-get download prometheus >/dev/null; }; } && \
	  mkdir -p $(CURDIR)/$(VENV)/prometheus && dpkg-deb -x prometheus_*.deb $(CURDIR)/$(VENV)/prometheus; \
	  status=$$?; rm -rf $$tmp; exit $$status

# Three workers on a 2-core machine, one test file each at a time (--dist
# loadfile): many end-to-end tests wait on real timers (SLAs, leases,
# back-offs) with a core idle, and a third worker fills that wait. A module's
# fixtures (the hostile corpus's daemon run) and caches (extracted samples)
# are built once, and a file's tests never race each other. Each worker has
# its own SeaweedFS, temp folders and process check (tests/conftest.py).
# Files go out in collection order (--no-loadscope-reorder), which puts the
# files with a test marked `slow` first (tests/conftest.py): the long ones
# run side by side from the start instead of one alone at the end.
#
# The suite starts the CLI and the daemon in their own processes hundreds of
# times; with PYTHONDONTWRITEBYTECODE set (this machine sets it) each of them
# would compile agent/ and service/ again (~0.1 s CPU a start), so they are
# compiled once here.
test: test-deps
	$(BIN)/python -m compileall -q agent service
	$(BIN)/python -m pytest -q -n 3 --dist loadfile --no-loadscope-reorder --durations=25

bench: $(VENV)/.installed-test
	for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) var build *.egg-info .pytest_cache
