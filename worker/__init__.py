"""The imgpress worker: RQ task functions (thin) and the pure image pipeline."""

import os

# A worker runs one job at a time and the pool of worker processes gives the parallelism, so
# the numeric libraries' own thread pools would only inflate the address space that
# IMGPRESS_WORKER_MEMORY_MB caps. Set before numpy and OpenCV are imported.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

from worker import allocator  # noqa: E402 - after the thread settings above

# Every process that runs the pipeline (workers, the benchmarks' raw limit) reuses freed image
# buffers instead of faulting new pages in for each array (`worker/allocator.py`).
allocator.keep_freed_memory()
