# Two commands do all the set-up on a fresh machine:
#   make demo   create .venv, install imgfeat, run the offline demo
#   make test   create .venv if needed, run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.imgfeat-installed

.PHONY: demo test lint bench install browser

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[offline,ray,viz,umap,ae,test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/imgfeat demo

test: $(STAMP) browser
	$(PY) -m pytest -q

# The HTML feature map is tested in a real headless Chromium (Debian's package; root only).
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	{ if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	      >/dev/null || echo "note: could not install chromium; the browser test will skip"; \
	  else echo "note: no chromium (apt-get install chromium); the browser test will skip"; fi; }

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/extract_throughput.py
