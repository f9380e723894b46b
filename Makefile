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

.PHONY: serve test test-container image

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
