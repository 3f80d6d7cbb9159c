# The two commands a new machine needs: `make test` and `make demo`. Both set themselves up.
PY := .venv/bin/python
PORT ?= 8470

.PHONY: venv test demo emulator bench clean

venv:
	@bash scripts/setup_venv.sh

test: venv
	$(PY) -m pytest -q -p no:cacheprovider tests

emulator: venv
	$(PY) -m api.emulator --port $(PORT)

clean:
	rm -rf .venv demo_output test_artifacts .comfy_host

demo: venv
	$(PY) scripts/demo.py
