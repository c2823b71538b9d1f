# The two set-up commands of the README: `make demo` and `make test`.
# Each installs what is missing (Debian packages, a .venv with the project), then runs.
# Safe to run again: installs are skipped when their stamp is newer than their inputs.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := python3-venv python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base \
	gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav \
	gstreamer1.0-tools ffmpeg iproute2 chromium
PYTEST_ARGS ?=

PREFIX ?= /opt/ivc-gateway

.PHONY: demo test bench deps clean install

demo: deps
	$(PY) -m sim.demo

test: deps
	$(PY) -m pytest $(PYTEST_ARGS)

bench: deps
	$(PY) bench/run_all.py

deps: .stamp-apt $(VENV)/.stamp-installed

# Debian packages: the GStreamer RTSP server the simulated site uses runs under the system
# python3 with python3-gi; ffmpeg is the reference in benchmarks.
.stamp-apt: Makefile
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${db:Status-Status}' "$$p" 2>/dev/null | grep -qx installed || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "run as root (or install:$$missing)"; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@touch $@

$(VENV)/.stamp-installed: pyproject.toml .stamp-apt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

# Install on a site box: the program in $(PREFIX), the systemd unit, user and folders.
install: .stamp-apt
	@test -x $(PREFIX)/bin/python || $(PYTHON) -m venv $(PREFIX)
	$(PREFIX)/bin/python -m pip install -q --upgrade pip
	$(PREFIX)/bin/python -m pip install -q .
	$(PREFIX)/bin/ivc-gateway install-service --from .

clean:
	rm -rf $(VENV) .stamp-apt .pytest_cache build *.egg-info
