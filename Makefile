# The two commands of the README, and a few shortcuts for developers.
.PHONY: demo test setup lint clean

demo:   ## set everything up, run the tour notebook, serve JupyterLab
	./scripts/demo.sh

test:   ## set everything up and run every test suite (what CI runs)
	./scripts/test.sh

setup:  ## only the set-up both commands start with
	./scripts/setup.sh

lint:
	.venv/bin/ruff check runtime kernel tests bench scripts && .venv/bin/mypy

clean:  ## remove the virtualenv and build stamps (not the shared image cache)
	rm -rf .venv .build labextension/node_modules labextension/prebuilt labextension/lib
