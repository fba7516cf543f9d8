FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    VIGIL_HOST=0.0.0.0 VIGIL_PORT=8080 VIGIL_MODELS_DIR=/app/models

RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt pyproject.toml README.md ./
RUN pip install --no-cache-dir -r requirements.txt
COPY src ./src
COPY data ./data
COPY scripts ./scripts
COPY main.py meta.json ./
RUN pip install --no-cache-dir --no-deps -e . \
    && useradd --create-home --uid 10001 vigil \
    && mkdir -p /app/models /app/runs && chown -R vigil /app/models /app/runs
USER vigil
# Models are trained into the image's models/ at first start unless a volume is mounted there.
VOLUME ["/app/models"]
EXPOSE 8080
CMD ["vigil", "serve", "--train-missing"]
