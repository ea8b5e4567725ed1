# The README's two commands: `make main` (the whole chain on the bundled sample) and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
ESM ?=
TCMALLOC := $(wildcard /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4)
# `mlflow run` would put runs in the "Default" experiment: name params.yaml's tracking.experiment instead
EXPERIMENT := $(shell sed -n 's/^  experiment: *\([^ #]*\).*/\1/p' params.yaml)
RUN_ENV := PATH=$(abspath $(BIN)):$$PATH $(if $(TCMALLOC),LD_PRELOAD=$(TCMALLOC))
TINY := outputs/esm2_tiny.pt
ESM_FLAG = $(if $(filter tiny,$(ESM)),-P embed.esm_model=$(TINY),$(if $(ESM),-P embed.esm_model=$(ESM)))

.PHONY: install main test repro bench

install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml requirements.txt scripts/install.sh
	VENV=$(VENV) bash scripts/install.sh

# ESM=tiny runs offline on a small random ESM-2 (labelled as such in every run); ESM=<name|path> picks the encoder.
main: install
	$(if $(filter tiny,$(ESM)),$(RUN_ENV) cafa make-tiny-esm --out $(TINY))
	$(RUN_ENV) mlflow run . -e main --env-manager local --experiment-name $(EXPERIMENT) $(ESM_FLAG)

test: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(RUN_ENV) python -m pytest

repro: install
	$(RUN_ENV) dvc repro

bench: install
	for bench in benchmarks/bench_*.py; do $(RUN_ENV) python $$bench || exit 1; done
