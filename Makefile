# Tiles to Tensor Cores: two commands.
#   make lab    set up .venv (first time), copy new exercises into my-work/, open the course in JupyterLab
#   make test   set up .venv (first time) and run the whole test suite (pytest + nbval), cold Triton cache
# and: make grade NB=my-work/ch01_naive_matmul.ipynb   (exit status 0 only with full marks)
#      make site   the course as a website, book/_build/html/ (the chapters run in the interpreter)
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
# what make test runs: everything, or e.g. make test TESTS=tests/test_site.py
TESTS ?= tests chapters solutions exercises

.PHONY: setup lab workspace test test-fast browser-deps exercises animations grade progress bench site clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/check_system.sh
	@bash scripts/check_system.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(if $(SYSTEM_SITE),--system-site-packages) $(VENV)
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $@

# Jupyter refuses to run as root unless told (containers, WSL as root)
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)

# Your working copies of the exercises: my-work/ (git-ignored). Copies each exercise template that is
# not there yet; never overwrites a file of yours.
WORK := my-work

workspace: setup
	$(BIN)/python -m grader.workspace --workspace $(WORK)

# JupyterLab serves the whole repository (chapters/, my-work/, ...) and opens chapter 00.
lab: setup workspace
	$(BIN)/jupyter lab $(LAB_ARGS) --ServerApp.root_dir="$(CURDIR)" chapters/00_gpu_in_one_page.ipynb

# The whole suite: kernels, schedule, grader, exercise generation, animations (pytest), then every
# notebook in chapters/ and solutions/ run top to bottom with nbval, and exercises/ executed.
# It starts from an empty, private Triton cache (removed afterwards), as on a fresh machine, unless
# TRITON_CACHE_DIR is set; .ci/run unsets it. tests/test_browser.py drives JupyterLab in a headless
# Chromium: browser-deps installs it with apt when run as root, and otherwise says how (not an error).
test: setup browser-deps
	bash scripts/cold_triton_cache.sh $(BIN)/python -m pytest -q --timeout=900 $(TESTS) --nbval-lax $(PYTEST_ARGS)

browser-deps: setup
	@bash scripts/check_system.sh --browser

test-fast: setup
	$(BIN)/python -m pytest -q tests -k "not render" $(PYTEST_ARGS)

exercises: setup
	$(BIN)/python -m grader.generate

animations: setup
	$(BIN)/python -m animations.render --quality medium

# make grade NB=my-work/ch01_naive_matmul.ipynb   (without NB: every notebook of my-work/ you worked on,
# then your progress table; the grades are kept in my-work/.grades.json). make progress: the table alone
# (it only reads, so it never fails). make grade fails (Make's status 2) unless every exercise graded has
# full marks; `python -m grader` itself exits 0 full marks, 3 not yet, 1 a Jupyter kernel failed, 2 bad
# command line (--progress too: 0 when every exercise attempted has full marks, else 3).
NB ?=
grade: setup
	$(BIN)/python -m grader $(NB)

progress: setup
	@$(BIN)/python -m grader --progress || test $$? -eq 3

# The course as a static website in book/_build/html/ (git-ignored): book/build.py copies chapters/ and
# exercises/ into book/_build/src/ and Jupyter Book runs the chapters there in Triton's interpreter. Run
# outputs are cached in book/_build/ by each notebook's code: only changed chapters run again.
site: setup
	$(BIN)/python book/build.py

# On a CUDA GPU: re-measure chapters 01-08 and rewrite results/<gpu>/*.json
bench: setup
	$(BIN)/python -m benchmarks 01 02 03 04 05 06 07 08

clean:
	rm -rf $(VENV) .pytest_cache
