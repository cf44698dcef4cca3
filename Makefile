# Tiles to Tensor Cores: two commands.
#   make lab    set up .venv (first time) and open the course in JupyterLab
#   make test   set up .venv (first time) and run the whole test suite (pytest + nbval)
PYTHON ?= python3
VENV   ?= .venv
# torch is installed only if the venv has none. torch==2.13.0 is a CPU build where a local wheel
# is offered (this course's CI machines) and PyPI's default (CUDA) build elsewhere.
# GPU users with torch already installed system-wide: `make lab SYSTEM_SITE=1` reuses it.
TORCH  ?= torch==2.13.0
SYSTEM_SITE ?=
BIN    := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
PYTEST_ARGS ?=

.PHONY: setup lab test test-fast notebooks-check exercises animations grade bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/check_system.sh
	@bash scripts/check_system.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(if $(SYSTEM_SITE),--system-site-packages) $(VENV)
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $@

# Jupyter refuses to run as root unless told (containers, WSL as root)
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)

lab: setup
	$(BIN)/jupyter lab $(LAB_ARGS) chapters/00_gpu_in_one_page.ipynb

# The whole suite: kernels, schedule, grader, exercise generation, animations (pytest), then every
# notebook in chapters/ and solutions/ run top to bottom with nbval, and exercises/ executed.
test: setup
	$(BIN)/python -m pytest -q --timeout=900 tests chapters solutions exercises --nbval-lax $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -q tests -k "not render" $(PYTEST_ARGS)

exercises: setup
	$(BIN)/python -m grader.generate

animations: setup
	$(BIN)/python -m animations.render --quality medium

# make grade NB=exercises/ch01_naive_matmul.ipynb
grade: setup
	$(BIN)/python -m grader $(NB)

# On a CUDA GPU: re-measure chapters 01-05 and rewrite results/*.json
bench: setup
	$(BIN)/python -m benchmarks 01 02 03 04 05

clean:
	rm -rf $(VENV) .pytest_cache
