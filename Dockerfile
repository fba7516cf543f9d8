# The base is an argument, so the image also builds where no registry can be reached:
# scripts/container_check.sh bootstraps localhost/vigil-base:bookworm from Debian's own packages
# (mmdebstrap) and builds with --build-arg BASE=localhost/vigil-base:bookworm. Either base works: the
# app lives in a virtual environment (/opt/venv), so Debian's externally-managed Python is never touched.
ARG BASE=python:3.11-slim
FROM ${BASE}

# Meant to run as the non-root user below with a read-only root filesystem: the only writable places
# are the two volumes (/app/models: the artifact store, trained at first start when empty; /app/runs:
# reports, experiments, the Alectio bucket) and a tmpfs on /tmp (HOME, matplotlib's cache, gunicorn's
# worker heartbeat files and its runtime folder with the Prometheus multiprocess files all live there):
#   docker run --read-only --tmpfs /tmp -v models:/app/models -v runs:/app/runs -p 127.0.0.1:8080:8080 vigil
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    HOME=/tmp MPLCONFIGDIR=/tmp/matplotlib TMPDIR=/tmp \
    VIGIL_HOST=0.0.0.0 VIGIL_PORT=8080 VIGIL_MODELS_DIR=/app/models VIGIL_WORK_DIR=/app/runs

# LightGBM needs OpenMP; the bootstrapped base has libgomp1 already, python:3.11-slim does not.
RUN if ! ldconfig -p | grep -q 'libgomp\.so\.1'; then \
        apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*; \
    fi \
    && python3 -m venv /opt/venv \
    && pip install --no-cache-dir --quiet --upgrade pip
WORKDIR /app
# the pinned dependencies first, alone: editing the code or the README keeps this layer cached
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt
COPY pyproject.toml setup.py README.md main.py meta.json ./
COPY src ./src
COPY data ./data
COPY scripts ./scripts
RUN pip install --no-cache-dir --no-deps -e . \
    && python -m compileall -q src \
    && groupadd --gid 10001 vigil \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin vigil \
    && mkdir -p /app/models /app/runs /app/state && chown 10001:10001 /app/models /app/runs /app/state
# numeric, so a runtime can check it is not root without reading /etc/passwd
USER 10001:10001
VOLUME ["/app/models", "/app/runs"]
EXPOSE 8080
CMD ["vigil", "serve", "--train-missing"]
