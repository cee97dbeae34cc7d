# One image for every imgpress process (stage `imgpress`, the default): the API (its command),
# `python -m worker` and `python -m worker.scheduler`; docker-compose.yml picks the command per
# service. Stage `dashboard` adds rq-dashboard, for that service alone.
FROM python:3.11-slim-bookworm AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# python-magic needs the libmagic C library to tell what an upload really is.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmagic1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Only what the package is built from: a plain `COPY . .` would also bake in .venv, .git,
# local data and any .env with secrets in it.
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY api ./api
COPY worker ./worker
COPY screening ./screening
COPY filestore ./filestore
# Installs the dependencies only (imgpress-server ships no package): the processes run the code in
# /app, found through PYTHONPATH whatever the working directory. Built for a bucket
# (`--build-arg IMGPRESS_STORAGE_URL=s3://...`, as the compose file passes it on), the image
# also gets the `s3` extra (obstore, boto3).
ARG IMGPRESS_STORAGE_URL=""
RUN case "$IMGPRESS_STORAGE_URL" in \
        s3://*) pip install --no-cache-dir '.[s3]' ;; \
        *) pip install --no-cache-dir . ;; \
    esac

# /data is created here, owned by the service user, so a named volume mounted on it starts
# out writable (Docker copies the directory's owner into a new, empty volume).
RUN useradd --system --create-home --uid 10001 imgpress \
    && mkdir -p /data \
    && chown imgpress:imgpress /data

ENV IMGPRESS_DATA_DIR=/data \
    IMGPRESS_HOST=0.0.0.0 \
    PYTHONPATH=/app

FROM base AS dashboard
RUN pip install --no-cache-dir '.[dashboard]'
USER imgpress
EXPOSE 9181
# rq-dashboard behind a guard that refuses other host names and cross-origin POSTs.
CMD ["python", "-m", "api.dashboard", "--bind", "0.0.0.0", "--port", "9181"]

FROM base AS imgpress
USER imgpress
EXPOSE 8000
# `python -m api` applies the HTTP limits (header and body deadlines, connection budget,
# trusted proxies) that plain `uvicorn` would not.
CMD ["python", "-m", "api"]
