# Set-up and everyday commands.  `make demo` and `make test` are the README's two commands:
# each sets up what is missing (idempotent, quick when done) and then runs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.hsc-installed
# Install extras (setup.py): everything, so `make demo` / `make test` need nothing else.
# A robot needs only [robot,ros] (docs/deploy.md, "Robot install").
HSC_EXTRAS ?= all,ros,dev
# Debian packages for headless MuJoCo rendering through EGL (Mesa llvmpipe on a CPU machine).
APT_PACKAGES := libegl1 libegl-mesa0 libgl1-mesa-dri libglx-mesa0
export MUJOCO_GL ?= egl

.PHONY: setup system-deps demo test lint pytest clean

setup: $(STAMP)

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing; \
	fi

$(STAMP): setup.py setup.cfg package.xml | system-deps
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[$(HSC_EXTRAS)]'
	@touch $@

demo: setup
	$(BIN)/hsc demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m compileall -q hybrid_snn_control launch test bench

pytest: setup
	$(BIN)/python -m pytest

test: lint pytest

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
