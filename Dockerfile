# gapwatch container image: `docker build -t gapwatch .`
# Runs `gapwatch monitor` by default; `docker run gapwatch loadgen ...` (or any other
# sub-command) works too. Configure the monitor with GAPWATCH_* environment variables
# (docs/operations.md, "Run the full stack with Docker").
ARG PYTHON_IMAGE=python:3.11-slim

# Build stage: install gapwatch and its dependencies into a virtual environment that the
# runtime stage copies whole, so pip, wheels and build tools stay out of the final image.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gapwatch ./gapwatch
RUN python -m venv /opt/gapwatch \
    && /opt/gapwatch/bin/pip install . \
    && /opt/gapwatch/bin/python -c "import aiokafka.record._crecords"

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="gapwatch" \
      org.opencontainers.image.description="Proves whether Kafka lost, duplicated or reordered any message." \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 gapwatch \
    && useradd --system --uid 10001 --gid gapwatch --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin gapwatch
COPY --from=build /opt/gapwatch /opt/gapwatch
ENV PATH=/opt/gapwatch/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GAPWATCH_HTTP_HOST=0.0.0.0 \
    GAPWATCH_HTTP_PORT=8571
USER 10001:10001
EXPOSE 8571
# The image has no curl; the standard library does the probe. /healthz stays open even when
# GAPWATCH_HTTP_TOKEN protects the API. Only the monitor serves it: compose disables the
# check for `loadgen` containers.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('GAPWATCH_HTTP_PORT', '8571'), timeout=4)"]
ENTRYPOINT ["gapwatch"]
CMD ["monitor"]
