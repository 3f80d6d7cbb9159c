# The two commands a new machine needs: `make test` and `make demo`. Both set themselves up.
PY := .venv/bin/python
PORT ?= 8470

.PHONY: venv test demo emulator probe bench soak screenshots clean

venv:
	@bash scripts/setup_venv.sh

# Two pytest runs: tests/comfy loads ComfyUI into its own process (and must not have the repo root on
# sys.path, hence .venv/bin/pytest rather than python -m pytest); the rest talk to ComfyUI over HTTP.
test: venv
	bash scripts/setup_browser.sh
	bash scripts/setup_floor.sh
	$(PY) -m pytest -q -p no:cacheprovider tests/api tests/e2e tests/browser
	.venv/bin/pytest -q -p no:cacheprovider tests/comfy

emulator: venv
	$(PY) -m api.emulator --port $(PORT)

# Compares the real service's answers with the emulator's (billed: it prints the price and sends nothing
# without --yes). `make probe ARGS=--yes` (or YES=1) to run it; see the README.
probe: venv
	$(PY) -m api.probe $(if $(YES),--yes) $(ARGS)

clean:
	rm -rf .venv demo_output test_artifacts .comfy_host

demo: venv
	$(PY) scripts/demo.py

bench: venv
	$(PY) benchmarks/run.py

soak: venv
	$(PY) benchmarks/soak.py

screenshots: venv
	bash scripts/setup_browser.sh
	$(PY) scripts/screenshots.py
