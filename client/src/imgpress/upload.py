"""The body of an upload made by the client: streamed in chunks, reopened or rewound on a retry;
a one-shot stream (a pipe) is sent once and never retried."""

from __future__ import annotations

import asyncio
import errno
import os
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO

from imgpress.errors import FileUnreadable

#: Upload chunk size: big enough for throughput, small enough to never hold a file in memory.
CHUNK_BYTES = 256 * 1024

Source = str | os.PathLike[str] | bytes | IO[bytes]


class UploadBody:
    """A request body that can be sent again on retry (paths, bytes, seekable files)."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.start = 0
        self.size: int | None = None
        if isinstance(source, bytes):
            self.size = len(source)
        elif isinstance(source, str | os.PathLike):
            self.size = _file_size(source)
        elif source.seekable():
            self.start = source.tell()
            self.size = source.seek(0, os.SEEK_END) - self.start
            source.seek(self.start)
        self.sent = False

    @property
    def repeatable(self) -> bool:
        """False for a one-shot stream that has already been read."""
        return not self.sent or self.size is not None

    def headers(self) -> dict[str, str]:
        """Content-Length when known, so an oversized upload is refused before it is sent."""
        return {"content-length": str(self.size)} if self.size is not None else {}

    def _file(self) -> tuple[IO[bytes], bool]:
        if isinstance(self.source, str | os.PathLike):
            return open(self.source, "rb"), True  # closed by the chunk readers
        if not isinstance(self.source, bytes) and self.size is not None:
            self.source.seek(self.start)
        assert not isinstance(self.source, bytes)
        return self.source, False

    def chunks(self) -> bytes | Iterator[bytes]:
        """The body for one attempt."""
        self.sent = True
        if isinstance(self.source, bytes):
            return self.source
        file, owned = self._file()

        def read() -> Iterator[bytes]:
            try:
                while chunk := file.read(CHUNK_BYTES):
                    yield chunk
            finally:
                if owned:
                    file.close()

        return read()

    def async_chunks(self) -> bytes | AsyncIterator[bytes]:
        """The body for one attempt of the async client; file reads run in a thread."""
        self.sent = True
        if isinstance(self.source, bytes):
            return self.source
        file, owned = self._file()

        async def read() -> AsyncIterator[bytes]:
            try:
                while chunk := await asyncio.to_thread(file.read, CHUNK_BYTES):
                    yield chunk
            finally:
                if owned:
                    file.close()

        return read()


def filename_of(source: Source, filename: str | None) -> str | None:
    """The display name sent with an upload."""
    if filename is not None:
        return filename
    if isinstance(source, str | os.PathLike):
        return Path(source).name
    name = getattr(source, "name", None)
    return Path(name).name if isinstance(name, str) else None


def _file_size(path: str | os.PathLike[str]) -> int:
    """The size of a regular file; FileUnreadable if it is missing, a folder or unreadable."""
    try:
        found = os.stat(path)
        if not stat.S_ISREG(found.st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a file")
        if not os.access(path, os.R_OK):
            raise PermissionError(errno.EACCES, "permission denied")
    except OSError as exc:
        raise FileUnreadable(f"{os.fspath(path)}: {exc.strerror or exc}") from exc
    return found.st_size
