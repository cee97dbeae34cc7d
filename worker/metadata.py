"""Which metadata an output carries (`metadata=strip|keep`): the ICC profile always; with `keep`,
EXIF without GPS and the XMP copyright; never comments or text chunks."""

from __future__ import annotations

import re

from PIL import Image

from worker.codecs import Metadata

_GPS_IFD = 0x8825
_ORIENTATION = 0x0112
_RIGHTS = re.compile(rb"<dc:rights>.*?</dc:rights>", re.DOTALL)
_XMP_WRAPPER = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">%s'
    b"</rdf:Description></rdf:RDF></x:xmpmeta>"
)


def collect(image: Image.Image, mode: str, icc_profile: bytes | None) -> Metadata:
    """The metadata to write for `mode` ('strip' or 'keep'), read from the source image."""
    if mode != "keep":
        return Metadata(icc_profile=icc_profile)
    return Metadata(icc_profile=icc_profile, exif=_exif_without_gps(image), xmp=_copyright_xmp(image))


def _exif_without_gps(image: Image.Image) -> bytes | None:
    try:
        exif = image.getexif()
        if not exif:
            return None
        exif.pop(_GPS_IFD, None)
        if _ORIENTATION in exif:
            exif[_ORIENTATION] = 1
        return exif.tobytes()
    except Exception:  # unreadable EXIF is dropped, never fatal
        return None


def _copyright_xmp(image: Image.Image) -> bytes | None:
    raw = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "replace")
    if not isinstance(raw, bytes):
        return None
    found = _RIGHTS.search(raw)
    return _XMP_WRAPPER % found.group(0) if found else None
