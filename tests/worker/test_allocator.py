"""A worker's allocator keeps an image's worth of freed memory for reuse instead of faulting it in again."""

from __future__ import annotations

import platform
import resource

import pytest

from worker import allocator

EIGHT_MIB = 8 * 1024 * 1024


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt thresholds are glibc's")
def test_freed_buffers_are_reused_without_new_page_faults() -> None:
    assert allocator.keep_freed_memory()
    warm = bytearray(EIGHT_MIB)  # zero-filled: every page is touched
    del warm
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    again = bytearray(EIGHT_MIB)
    del again
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    # 8 MiB of fresh pages would be 2048 faults; reused heap needs (almost) none.
    assert faults < 256
