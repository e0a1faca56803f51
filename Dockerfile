# german-rag HTTP service. CPU torch by default; for CUDA build with
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 -t german-rag:cuda .
# and run with GERMAN_RAG_DEVICE=cuda and a GPU reservation (see docker-compose.yml).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# Pinned like the Makefile's TORCH: a bare `torch` from PyPI is a multi-GB CUDA build.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ingest ingest
COPY retrieval retrieval
COPY pipelines pipelines
# The installed torch satisfies `torch>=2.4`, so pip keeps it. unstructured-inference without its
# dependencies, as in the Makefile (they would pull timm -> torchvision -> a CUDA torch).
RUN pip install . && pip install --no-deps "unstructured-inference>=1.0"

FROM ${PYTHON_IMAGE}
# libmagic: unstructured's file type detection; libglib: OpenCV (PDF path); tesseract with German data, its
# orientation model and poppler's pdftoppm: OCR of scans and images (the Makefile's SYSTEM_PACKAGES).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmagic1 libglib2.0-0 \
        tesseract-ocr tesseract-ocr-deu tesseract-ocr-osd poppler-utils \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 app \
    && useradd --uid 10001 --gid app --home-dir /home/app --create-home --shell /usr/sbin/nologin app \
    && mkdir -p /models && chown app:app /models
COPY --from=build /opt/venv /opt/venv
# The root filesystem can be read-only: the model cache is a volume (/models), uploads and caches go
# to /tmp (a tmpfs in compose). The service binds 0.0.0.0 inside the container and therefore refuses
# to start without GERMAN_RAG_READ_KEYS / GERMAN_RAG_WRITE_KEYS (or GERMAN_RAG_ALLOW_PUBLIC=true).
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/home/app \
    HF_HOME=/models \
    GERMAN_RAG_MODEL_CACHE=/models \
    GERMAN_RAG_HOST=0.0.0.0 \
    GERMAN_RAG_PORT=8000 \
    MPLCONFIGDIR=/tmp/matplotlib \
    DO_NOT_TRACK=1 \
    UNSTRUCTURED_DISABLE_NOTICE=1 \
    TOKENIZERS_PARALLELISM=false \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /home/app
VOLUME ["/models"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
ENTRYPOINT ["german-rag"]
CMD ["serve"]
