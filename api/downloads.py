"""Serving a finished job's output: the right headers, a safe file name, conditional requests;
from the local disk, streamed from the bucket, or as a redirect to a presigned URL."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from filestore.blobs import Blobs, Kind, Readable
from screening.imaging import EXTENSIONS
from shared.errors import JobExpired
from shared.schema import Job

#: Outputs up to this size are sent from memory; larger ones are streamed from disk.
SMALL_FILE_BYTES = 1024 * 1024
#: Bytes read from the bucket at a time while a file is streamed to the client.
CHUNK_BYTES = 256 * 1024
#: Why a job's original cannot be downloaded once it is gone.
INPUT_GONE = "This job no longer keeps its original (it failed or expired)."
#: The longest download name, in bytes of UTF-8: what common file systems take.
NAME_BYTES = 255
_UNSAFE_ASCII = re.compile(r"[^A-Za-z0-9._ -]+")


def download_name(filename: str, media_type: str) -> tuple[str, str]:
    """(ASCII fallback, Unicode) names for Content-Disposition, with the output's extension."""
    stem = filename.rsplit(".", 1)[0] if "." in filename else filename
    stem = stem.strip(" .") or "image"
    ascii_stem = _UNSAFE_ASCII.sub(
        "_", unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    )
    ascii_stem = ascii_stem.strip(" ._") or "image"
    extension = EXTENSIONS.get(media_type, "")
    return _fitted(ascii_stem, extension), _fitted(stem, extension)


def _fitted(stem: str, extension: str) -> str:
    """The name cut to NAME_BYTES of UTF-8, between characters, keeping its extension."""
    room = NAME_BYTES - len(extension.encode())
    return stem.encode()[:room].decode("utf-8", "ignore").rstrip(" .") + extension


def content_disposition(filename: str, media_type: str) -> str:
    """An attachment header naming the file both ways: ASCII for old clients, UTF-8 (RFC 6266)."""
    fallback, unicode_name = download_name(filename, media_type)
    value = f'attachment; filename="{fallback}"'
    if unicode_name != fallback:
        value += f"; filename*=UTF-8''{quote(unicode_name, safe='')}"
    return value


def etag(job: Job) -> str:
    """A strong validator for a job's output, which never changes once written."""
    assert job.output is not None
    return f'"{job.id}-{job.output.bytes}"'


def input_response(job: Job, store: Blobs) -> Response:
    """A job's original upload, as the allowlisted image type it was sniffed as, never rendered as a page.

    Blocking (it asks the store for the file): run it in a thread.
    """
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, max-age=3600",
        "Content-Disposition": content_disposition(job.input.filename, job.input.media_type),
    }
    path = store.local_path(job.id, "input")
    if path is not None:
        if not path.exists():
            raise JobExpired(INPUT_GONE)
        return FileResponse(path, media_type=job.input.media_type, headers=headers)
    return stored_response(store, job.id, "input", job.input.media_type, headers, INPUT_GONE)


def stored_response(
    store: Blobs,
    job_id: str,
    kind: Kind,
    media_type: str,
    headers: dict[str, str],
    gone: str | None = None,
    redirect: bool = True,
) -> Response:
    """A job's file from a remote store: a redirect to a presigned URL (if the store makes them
    and `redirect`), or its bytes streamed.

    JobExpired if the file is not there; given `gone` (its message), the file is looked for
    before a link to it is made: a job's input goes when the job fails, its output only with
    its record.
    """
    link = store.link(job_id, kind, media_type, headers["Content-Disposition"]) if redirect else None
    if link is not None:
        if gone is not None and not store.exists(job_id, kind):
            raise JobExpired(gone)
        return RedirectResponse(link, status_code=307, headers={"Cache-Control": "no-store"})
    try:
        body, size = store.open(job_id, kind)
    except FileNotFoundError:
        raise JobExpired(gone) from None
    if size <= SMALL_FILE_BYTES:
        # Read at once, as from the local disk: streaming costs a thread hop per piece.
        try:
            content = body.read()
        finally:
            body.close()
        return Response(content, media_type=media_type, headers=headers)
    headers = {**headers, "Content-Length": str(size)}
    return StreamingResponse(_chunks(body), media_type=media_type, headers=headers)


def _chunks(body: Readable) -> Iterator[bytes]:
    """The file's bytes; it is closed at the end or when the client goes away."""
    try:
        while chunk := body.read(CHUNK_BYTES):
            yield chunk
    finally:
        body.close()


def result_response(
    request: Request, job: Job, store: Blobs, carried: bytes | None = None, redirect: bool = True
) -> Response:
    """The output file as an attachment, or 304 if the client already has it; JobExpired if it is gone.

    From a remote store it blocks (a request to the bucket): run it in a thread then, unless
    its bytes were `carried` through Redis. `redirect`: a presigned URL may answer instead.
    """
    assert job.output is not None
    tag = etag(job)
    headers = {"ETag": tag, "X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600"}
    if tag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    headers["Content-Disposition"] = content_disposition(job.input.filename, job.output.media_type)
    if carried is not None:
        return Response(carried, media_type=job.output.media_type, headers=headers)
    path = store.local_path(job.id, "output")
    if path is None:
        return stored_response(store, job.id, "output", job.output.media_type, headers, redirect=redirect)
    if job.output.bytes <= SMALL_FILE_BYTES:
        # One read from the page cache beats FileResponse's thread hops for typical outputs.
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            raise JobExpired() from None
        return Response(content, media_type=job.output.media_type, headers=headers)
    if not path.exists():
        raise JobExpired()
    return FileResponse(path, media_type=job.output.media_type, headers=headers)
