# tripact – two commands for a newcomer: `make run` (demo) and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed-$(shell cat setup.cfg pyproject.toml | cksum | cut -d' ' -f1)
# Debian packages the tests need: poppler (independent PDF signature validator, pdftotext/pdftoppm),
# certutil (an NSS database trusting our root for pdfsig),
# Chromium for the browser tests, CJK fonts so screenshots of Chinese pages can be read,
# and the TrueType CJK fonts the PDF renderer embeds.
DEBIAN_PACKAGES := poppler-utils libnss3-tools chromium chromium-driver fonts-noto-cjk fonts-wqy-zenhei fonts-hanazono

# Only the benchmarks need these (wrk: the HTTP load generator of bench/wechat.py).
BENCH_DEBIAN_PACKAGES := wrk

.PHONY: run test bench venv system-deps lint clean

$(STAMP):
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

system-deps:
	@missing=$$(for p in $(DEBIAN_PACKAGES) $(EXTRA_DEBIAN_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

run: venv
	$(VENV)/bin/tripact init
	$(VENV)/bin/tripact demo
	$(VENV)/bin/tripact serve

test: venv system-deps
	$(PY) -m pytest

bench: venv
	$(MAKE) system-deps EXTRA_DEBIAN_PACKAGES="$(BENCH_DEBIAN_PACKAGES)"
	@for b in bench/signing.py bench/wechat.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
