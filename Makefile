# The README's two commands: `make main` (the whole chain on the bundled sample) and `make test`;
# then `make ui` (the MLflow UI on http://127.0.0.1:5000) and `make compare` (train runs side by side).
VENV ?= .venv
BIN := $(VENV)/bin
ESM ?=
TCMALLOC := $(wildcard /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4)
# `mlflow run` would put runs in the "Default" experiment: name params.yaml's tracking.experiment instead
EXPERIMENT := $(shell sed -n 's/^  experiment: *\([^ #]*\).*/\1/p' params.yaml)
RUN_ENV := PATH=$(abspath $(BIN)):$$PATH $(if $(TCMALLOC),LD_PRELOAD=$(TCMALLOC))
TINY := outputs/esm2_tiny.pt
ESM_PATH = $(if $(filter tiny,$(ESM)),$(TINY),$(ESM))
ESM_FLAG = $(if $(ESM),-P embed.esm_model=$(ESM_PATH))
TRACKING_URI := $(shell sed -n 's/^  uri: *\([^ #]*\).*/\1/p' params.yaml)
UI_PORT ?= 5000

.PHONY: install reference main test repro bench ui compare tiny store

install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml requirements.txt scripts/install.sh
	VENV=$(VENV) bash scripts/install.sh

# the reference member's database (Swiss-Prot 2014 from Debian's metastudent-data); optional: main runs without it
reference:
	@bash scripts/install_reference.sh

# ESM=tiny runs offline on a small random ESM-2 (labelled as such in every run); ESM=<name|path> picks the encoder.
main: install store reference $(if $(filter tiny,$(ESM)),tiny)
	$(RUN_ENV) mlflow run . -e main --env-manager local --experiment-name $(EXPERIMENT) $(ESM_FLAG)

# the tracking store's tables and the experiment, made once under a lock: `mlflow run` opens the store in MLflow's
# own launcher before any of our code runs, and launchers racing on a new SQLite file fail there
store: install
	@$(RUN_ENV) python -c "from cafa_mlflow.config.params_file import load_params; from cafa_mlflow.tracking.runs import configure; print('tracking store ready:', configure(load_params()))"

test: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(RUN_ENV) python -m pytest

# ESM=tiny (offline) or ESM=<name|path>: `dvc exp run -S embed.esm_model=...`, which also writes the value
# into params.yaml (see docs/dvc.md); a second identical call runs nothing.
repro: install $(if $(filter tiny,$(ESM)),tiny)
	$(RUN_ENV) dvc $(if $(ESM),exp run -S embed.esm_model=$(ESM_PATH),repro)

# the small random ESM-2 for offline runs (seeded: the same file every time)
tiny: install
	@[ -f $(TINY) ] || $(RUN_ENV) cafa make-tiny-esm --out $(TINY)

ui: install
	@$(RUN_ENV) python -c "from cafa_mlflow.tracking.run_meta import print_ui_url; print_ui_url($(UI_PORT))"
	$(RUN_ENV) mlflow ui --backend-store-uri $${MLFLOW_TRACKING_URI:-$(TRACKING_URI)} --host 127.0.0.1 --port $(UI_PORT)

compare: install
	$(RUN_ENV) cafa compare $(if $(BY),--by $(BY))

bench: install
	for bench in benchmarks/bench_*.py; do $(RUN_ENV) python $$bench || exit 1; done
