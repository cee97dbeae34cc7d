"""Receiving an upload: the body (raw or multipart) is streamed to a temp file in chunks and
stopped at IMGPRESS_MAX_UPLOAD_BYTES, whatever Content-Length claims."""

from __future__ import annotations

import errno
import os
import re
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import IO

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from api.limits import paced
from screening.imaging import SNIFF_BYTES
from shared import storage
from shared.errors import BadOption, ImgpressError, StorageFull, TooLarge, UnsupportedMedia
from shared.settings import Settings

#: Form fields other than the file are small options; more than this is not a client of ours.
MAX_FIELDS = 32
MAX_FIELD_BYTES = 4096
#: Room for multipart headers and option fields on top of the file itself.
_ENVELOPE_BYTES = MAX_FIELDS * MAX_FIELD_BYTES
#: The longest display name kept of a user's file name, in characters.
MAX_NAME_CHARS = 200
_NAME_CHARS = re.compile(r"[\x00-\x1f\x7f/\\]")


class MissingFile(BadOption):
    """Raised when a form has no `file` part; keeps the form's other fields for the caller."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("The form has no 'file' field; attach the image as 'file'.")
        self.fields = fields


@dataclass
class Upload:
    """A received upload: the temp file holding its bytes and what came with it."""

    path: Path
    size: int
    filename: str
    head: bytes
    fields: dict[str, str] = field(default_factory=dict)
    #: Why this file of a batch was refused while it was received (then nothing is kept of it).
    refusal: ImgpressError | None = None


def clean_filename(raw: str) -> str:
    """The user's file name reduced to a display name: last path part, no control characters."""
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1]
    name = _NAME_CHARS.sub("", name).strip().lstrip(".")
    if len(name) > MAX_NAME_CHARS:
        stem, dot, extension = name.rpartition(".")
        keep = dot + extension if dot and len(extension) <= 10 else ""  # cut the name, not its type
        name = name[: MAX_NAME_CHARS - len(keep)].rstrip(" .") + keep if keep else name[:MAX_NAME_CHARS]
    return name or "image"


def form_filename(raw: bytes) -> str:
    """A multipart part's file name as the user had it: browsers send `"`, CR and LF in it as
    %22, %0D and %0A (the HTML standard's form encoding), which are undone here."""
    name = raw.decode("utf-8", "replace")
    return name.replace("%22", '"').replace("%0D", "\r").replace("%0A", "\n")


class _Sink:
    """A temp file that refuses to grow past the limit and keeps the file's first bytes."""

    def __init__(self, data_dir: Path, limit: int) -> None:
        self.path = storage.temp_path(data_dir)
        self.limit = limit
        self.size = 0
        self.head = b""
        try:
            self._file: IO[bytes] = os.fdopen(storage.create_private(self.path), "wb")
        except OSError as exc:
            raise _storage_error(exc) from None

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise TooLarge(f"The upload is larger than the limit of {self.limit:,} bytes.")
        if len(self.head) < SNIFF_BYTES:
            self.head += data[: SNIFF_BYTES - len(self.head)]
        try:
            self._file.write(data)
        except OSError as exc:
            raise _storage_error(exc) from None

    def close(self) -> None:
        try:
            self._file.close()
        except OSError as exc:
            raise _storage_error(exc) from None

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


def _storage_error(exc: OSError) -> StorageFull:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM):
        return StorageFull()
    return StorageFull("The server could not store this upload. Try again later.")


def _check_declared_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"The upload is larger than the limit of {limit:,} bytes.")


async def receive(request: Request, settings: Settings, filename: str = "") -> Upload:
    """Stream the request body to a temp file; multipart or raw, by its Content-Type.

    `filename` names a raw upload (else its Content-Disposition does); a multipart file part has its own.
    """
    data_dir, limit = settings.data_dir, settings.max_upload_bytes
    body = paced(request.stream(), settings)
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type == b"multipart/form-data":
        _check_declared_length(request, limit + _ENVELOPE_BYTES)
        boundary = params.get(b"boundary")
        if not boundary:
            raise BadOption("The multipart body has no boundary.")
        (upload,) = await _receive_multipart(body, boundary, data_dir, limit, 1)
        return upload
    if content_type.startswith(b"image/") or content_type == b"application/octet-stream":
        _check_declared_length(request, limit)
        filename = filename or _disposition_filename(request)
        sink = _Sink(data_dir, limit)
        try:
            async for chunk in body:
                sink.write(chunk)
            sink.close()
        except BaseException:
            sink.discard()
            raise
        if sink.size == 0:
            sink.discard()
            raise BadOption("The file is empty (0 bytes).")
        return Upload(sink.path, sink.size, clean_filename(filename or "image"), sink.head, {})
    raise UnsupportedMedia(
        "Send the image as multipart/form-data (field 'file') or as a raw body "
        "with Content-Type image/* or application/octet-stream."
    )


def _disposition_filename(request: Request) -> str:
    """A raw upload's name from its Content-Disposition: `filename*` (RFC 6266, e.g.
    `UTF-8''caf%C3%A9.jpg`) before `filename`."""
    header = request.headers.get("content-disposition", "")
    if "filename*" in header.lower():
        message = Message()
        message["content-disposition"] = header
        for name, value in message.get_params([], header="content-disposition"):
            if name == "filename" and isinstance(value, tuple):  # the RFC 2231 form
                charset, _, encoded = value
                try:
                    return encoded.encode("latin-1").decode(charset or "utf-8")
                except (LookupError, UnicodeError):
                    break  # not what its charset says: the plain name, if any
    _, params = parse_options_header(header)
    raw = params.get(b"filename")
    return raw.decode("utf-8", "replace") if raw else ""


class _MultipartReceiver:
    """python-multipart callbacks: each `file` part goes to its own sink, other parts are options."""

    def __init__(self, data_dir: Path, limit: int, max_files: int) -> None:
        self.data_dir = data_dir
        self.limit = limit
        self.max_files = max_files
        self.files: list[tuple[_Sink, str]] = []
        #: Batch files refused while arriving (too large, one too many), by position among the files.
        self.refused: dict[int, ImgpressError] = {}
        self.skipped = 0
        self.fields: dict[str, str] = {}
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._field: str | None = None
        self._value = bytearray()
        self._in_file = False
        self.field_parts = 0

    def envelope_bytes(self, fed: int) -> int:
        """Of the `fed` bytes of body, how many were not file contents (headers, fields, filler)."""
        return fed - self.skipped - sum(sink.size for sink, _ in self.files)

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
        }

    def on_part_begin(self) -> None:
        self._disposition = b""
        self._field = None
        self._value = bytearray()
        self._in_file = False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = b""
        self._header_value = b""

    def on_headers_finished(self) -> None:
        _, params = parse_options_header(self._disposition)
        name = params.get(b"name", b"").decode("utf-8", "replace")
        if name == "file":
            if len(self.files) >= self.max_files:
                if self.max_files == 1:
                    raise BadOption("Send one file per job (one 'file' field); use /v1/batches for several.")
                # Refused on its own: the files before it are kept, and a client can send it again.
                self.refused[len(self.files)] = TooLarge(
                    f"A batch takes at most {self.max_files} files; send this one in another batch."
                )
            filename = form_filename(params.get(b"filename", b""))
            self.files.append((_Sink(self.data_dir, self.limit), filename))
            if len(self.files) - 1 in self.refused:
                self.files[-1][0].discard()
            self._in_file = True
        elif b"filename" in params:
            raise BadOption(f"Unexpected file field '{name}'; attach the image as 'file'.")
        else:
            # Every part counts, repeated names and nameless ones too.
            self.field_parts += 1
            if self.field_parts > MAX_FIELDS:
                raise BadOption("Too many form fields.")
            self._field = name

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            position = len(self.files) - 1
            if position in self.refused:
                self.skipped += end - start
                return
            try:
                self.files[-1][0].write(data[start:end])
            except TooLarge as exc:
                if self.max_files == 1:
                    raise
                # One file over the limit in a batch: refuse it alone and drop the rest of its bytes.
                self.refused[position] = exc
                self.files[-1][0].discard()
        else:
            self._value += data[start:end]
            if len(self._value) > MAX_FIELD_BYTES:
                raise BadOption(f"The form field '{self._field}' is too long.")

    def on_part_end(self) -> None:
        if self._in_file:
            if len(self.files) - 1 not in self.refused:
                self.files[-1][0].close()
            self._in_file = False
        elif self._field:
            self.fields[self._field] = self._value.decode("utf-8", "replace")


async def _receive_multipart(
    stream: AsyncIterator[bytes], boundary: bytes, data_dir: Path, limit: int, max_files: int
) -> list[Upload]:
    receiver = _MultipartReceiver(data_dir, limit, max_files)
    parser = MultipartParser(boundary, receiver.callbacks())  # type: ignore[arg-type]
    fed = 0
    try:
        async for chunk in stream:
            parser.write(chunk)
            fed += len(chunk)
            # Refused as it comes: preambles, part headers and fields are small in any real form.
            if receiver.envelope_bytes(fed) > _ENVELOPE_BYTES:
                raise BadOption("The form has too much besides its files.")
            if fed > limit * max_files + _ENVELOPE_BYTES:
                raise TooLarge(
                    f"The upload is larger than {max_files} files of the limit of {limit:,} bytes."
                )
        parser.finalize()
        if not receiver.files:
            raise MissingFile(receiver.fields)
        for position, (sink, name) in enumerate(receiver.files):
            if sink.size == 0 and position not in receiver.refused:
                if max_files == 1:
                    raise BadOption(f"The uploaded file '{clean_filename(name or 'image')}' is empty.")
                receiver.refused[position] = BadOption("The file is empty (0 bytes).")
                sink.discard()
    except BaseException as exc:
        for sink, _ in receiver.files:
            sink.discard()
        if isinstance(exc, Exception) and not isinstance(exc, ImgpressError):
            raise BadOption("The multipart body is malformed.") from None
        raise
    return [
        Upload(
            sink.path,
            sink.size,
            clean_filename(name or "image"),
            sink.head,
            receiver.fields,
            receiver.refused.get(position),
        )
        for position, (sink, name) in enumerate(receiver.files)
    ]


async def receive_many(request: Request, settings: Settings) -> list[Upload]:
    """Stream every `file` part of a multipart body to its own temp file (a batch upload).

    A file that is empty, over the size limit or past the batch's file count comes back with its
    `refusal` set and nothing stored, so the others still go through.
    """
    data_dir, limit, max_files = settings.data_dir, settings.max_upload_bytes, settings.max_batch_files
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data":
        raise UnsupportedMedia("Send a batch as multipart/form-data with one 'file' field per image.")
    _check_declared_length(request, limit * max_files + _ENVELOPE_BYTES)
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadOption("The multipart body has no boundary.")
    return await _receive_multipart(paced(request.stream(), settings), boundary, data_dir, limit, max_files)
