"""Prometheus metrics shared by the API and the workers; with PROMETHEUS_MULTIPROC_DIR set, every
process writes its samples there and GET /metrics adds them up."""

from __future__ import annotations

import os

from prometheus_client import Counter, Histogram

# The folder must exist before the first metric is made (at import) in multiprocess mode.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

HTTP_REQUESTS = Counter(
    "imgpress_http_requests_total",
    "HTTP requests answered, by route and status.",
    ["method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "imgpress_http_request_seconds",
    "Time to answer an HTTP request, by route.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
UPLOAD_BYTES = Counter("imgpress_upload_bytes_total", "Bytes of uploads accepted into jobs.")
JOBS = Counter("imgpress_jobs_total", "Jobs that ended, by outcome and error code.", ["outcome", "code"])
COMPRESS_SECONDS = Histogram(
    "imgpress_compress_seconds",
    "Time the worker spent compressing one image.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
SAVED_BYTES = Histogram(
    "imgpress_saved_bytes",
    "Bytes saved per finished job.",
    buckets=(0, 1e3, 1e4, 5e4, 1e5, 5e5, 1e6, 5e6, 1e7, 5e7),
)
