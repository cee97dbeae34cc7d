"""Saving an output: the file name the server suggests (Content-Disposition, RFC 6266), and
writing the bytes to a new file so that no photo is ever replaced by accident."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from urllib.parse import unquote

# One `; name=value` parameter; the value is a token or a quoted string with backslash escapes.
_PARAMETER = re.compile(r';\s*([^\s;=]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')
_ESCAPED = re.compile(r"\\(.)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: Charsets RFC 5987 requires a recipient to read in `filename*`.
_CHARSETS = ("utf-8", "iso-8859-1")


def plain_name(name: str) -> str:
    """A suggested name as a bare file name: no folders, no control characters ('' if nothing is left)."""
    name = _CONTROL.sub("", re.split(r"[/\\]", name)[-1]).strip()
    return "" if name in (".", "..") else name


def disposition_filename(header: str) -> str:
    """The file name in a Content-Disposition header: `filename*` (RFC 5987) before `filename`.

    `filename*=UTF-8''caf%C3%A9.jpg` carries the real name; `filename` is the ASCII fallback
    for old clients. '' when the header names no file.
    """
    parameters: dict[str, str] = {}
    for name, value in _PARAMETER.findall(header):
        if value.startswith('"') and value.endswith('"') and len(value) > 1:
            value = _ESCAPED.sub(r"\1", value[1:-1])
        parameters.setdefault(name.lower(), value.strip())
    extended = parameters.get("filename*", "")
    charset, _, rest = extended.partition("'")
    _language, _, encoded = rest.partition("'")
    if charset.lower() in _CHARSETS and encoded:
        try:
            return plain_name(unquote(encoded, encoding=charset.lower(), errors="strict"))
        except UnicodeDecodeError:
            pass  # a name that is not what its charset says: the fallback is still good
    return plain_name(parameters.get("filename", ""))


def save(data: bytes, filename: str, where: str | os.PathLike[str], overwrite: bool) -> Path:
    """Write an output into a folder under `filename`, or to a file path; the path written.

    - data: the output's bytes.
    - filename: the server's name for it, used when `where` is a folder.
    - where: an existing folder, a folder to make (a string ending in `/`), or the path of the
      file to write (its folder must exist).
    - overwrite: replace a file already there; otherwise FileExistsError, and nothing is written.

    The bytes go to a temporary file in the same folder, renamed into place when complete.
    """
    target = Path(where)
    if isinstance(where, str) and where.endswith(("/", os.sep)):
        target.mkdir(parents=True, exist_ok=True)
    if target.is_dir():
        if not plain_name(filename):
            raise ValueError("the server suggested no file name: give save() a file path")
        target = target / plain_name(filename)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True to replace it")
    temp = target.parent / f".imgpress-{secrets.token_hex(8)}.tmp"
    # Made with the mode any new file gets (the umask applies), never opened over another file.
    handle = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        if overwrite:
            os.replace(temp, target)
        else:
            try:
                os.link(temp, target)  # fails if a file appeared meanwhile: never replace one
            except FileExistsError:
                raise FileExistsError(f"{target} exists; pass overwrite=True to replace it") from None
    finally:
        temp.unlink(missing_ok=True)
    return target
