# The two commands a new machine needs: `make test` and `make demo`. Both set themselves up.
# WAN_COMFY_HOST picks the ComfyUI host (0.33.0, the default, or 0.3.75, the oldest supported): scripts/hosts.py.
PY := .venv/bin/python
# The chosen host's Python (for what loads ComfyUI into its own process).
HOST_PY = $$($(PY) scripts/hosts.py python)
PORT ?= 8470
# When make started: scripts/run_suites.py reports the set-up's time from it.
export WAN_MAKE_STARTED := $(shell date +%s)

.PHONY: venv host hosts test demo emulator probe bench soak screenshots clean

venv:
	@bash scripts/setup_venv.sh

# The host WAN_COMFY_HOST picks; `hosts`: both.
host: venv
	@bash scripts/setup_host.sh

hosts: venv
	@bash scripts/setup_host.sh 0.33.0
	@bash scripts/setup_host.sh 0.3.75

# Each suite in a pytest process of its own (scripts/run_suites.py: two lanes at once), its time printed at
# the end: the api suite; e2e, the soak's short pass, browser and in-process tests on ComfyUI 0.33.0; an e2e
# smoke on 0.3.75.
test:
	bash scripts/setup_test.sh
	$(PY) scripts/run_suites.py

emulator: venv
	$(PY) -m api.emulator --port $(PORT)

# Compares the real service's answers with the emulator's (billed: it prints the price and sends nothing
# without --yes). `make probe ARGS=--yes` (or YES=1) to run it; see docs/emulator.md.
probe: venv
	$(PY) -m api.probe $(if $(YES),--yes) $(ARGS)

clean:
	rm -rf .venv .hosts demo_output test_artifacts .comfy_host

demo: host
	$(PY) scripts/demo.py

bench: host
	$(HOST_PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt scikit-image==0.26.0
	$(HOST_PY) benchmarks/run.py

soak: host
	$(HOST_PY) benchmarks/soak.py

screenshots: host
	bash scripts/setup_browser.sh
	$(PY) scripts/screenshots.py
