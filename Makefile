# `make serve` and `make test` (the README's two commands) each build .venv on first use.
# A stamp per install, newer than pyproject.toml, keeps pip from running again until the
# dependencies may have changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# `:=`, not `?=`: some shells export HOST, which must not move the service off loopback.
HOST := 127.0.0.1
PORT := 8000
IMAGE := lenet5:dev
# The torch pin, read from the `train` extra so the two cannot drift apart.
TORCH := $(shell grep -o '"torch==[^"]*"' pyproject.toml | tr -d '"')

# `make retrain`: corrections -> dataset -> fine-tuned model -> evaluation -> ONNX file, in a
# run folder of its own; the shipped model is never touched. MNIST from MNIST (else the cache).
RUN := runs/retrain/$(shell date -u +%Y%m%dT%H%M%S)
MNIST ?=
RETRAIN_MODEL ?= $(RUN)/lenet5.onnx
RETRAIN_ARGS ?= --epochs 5 --lr 1e-4 --distort --j 84 --negatives 0.33 --feedback-repeat 10 \
	--threads 1
# The last epoch, its learning rate annealed to nearly 0, rather than best.pt: between the
# epochs of a short fine-tune the validation error of 5,000 digits moves within its own noise.
TUNED = $(RUN)/train/checkpoint.pt
# The bound on MNIST test error above which the retrained model is not exported.
MAX_TEST_ERROR ?= 0.0075
DATA_ARG = $(if $(MNIST),--data-dir $(MNIST))

.PHONY: serve test test-container image retrain

serve: $(VENV)/.runtime-installed
	$(BIN)/lenet5 serve --host $(HOST) --port $(PORT)

test: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -m "not container"

# Builds and runs the image (starts a Docker engine where none answers); CI runs it apart.
test-container: $(VENV)/.dev-installed
	$(BIN)/pytest -m container

image:
	docker build -t $(IMAGE) .

retrain: $(VENV)/.dev-installed
	$(BIN)/lenet5 feedback export --out $(RUN)/feedback
	nice -n 10 $(BIN)/lenet5 train --init-from model/lenet5.pt --feedback $(RUN)/feedback \
		$(DATA_ARG) $(RETRAIN_ARGS) --out-dir $(RUN)/train
	$(BIN)/lenet5 evaluate --checkpoint $(TUNED) --feedback $(RUN)/feedback \
		$(DATA_ARG) --plot-dir $(RUN)/evaluation > $(RUN)/evaluation.txt; \
		status=$$?; cat $(RUN)/evaluation.txt; exit $$status
	$(BIN)/lenet5 export --checkpoint $(TUNED) --out $(RETRAIN_MODEL) $(DATA_ARG) \
		--max-test-error $(MAX_TEST_ERROR)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Only what the service needs: it never imports torch, so a fresh `make serve` stays small.
$(VENV)/.runtime-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e .
	touch $@

# The pinned torch first: that release is a CPU build, and with it installed the `train`
# extra is already satisfied instead of resolving to a multi-GB CUDA build.
$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install '$(TORCH)'
	$(BIN)/pip install -e '.[train,dev]'
	touch $@ $(VENV)/.runtime-installed
