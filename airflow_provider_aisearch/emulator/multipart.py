"""Reading a ``multipart/form-data`` body (an item upload) into its parts, as a server does.

:func:`parse_form` splits the body at the boundary the ``Content-Type`` names and reads each part's
``Content-Disposition`` (``name``, ``filename``) and ``Content-Type``; the content is kept byte for
byte. The request log keeps the parts (:attr:`~airflow_provider_aisearch.emulator.RequestRecord.form`),
so a test can compare what two clients sent part by part: boundaries differ between clients, parts
must not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["FormPart", "MultipartError", "parse_form"]

_PARAM = re.compile(r';\s*([A-Za-z0-9_*-]+)="((?:[^"\\]|\\.)*)"|;\s*([A-Za-z0-9_*-]+)=([^;\s]+)')


class MultipartError(ValueError):
    """The body is not the ``multipart/form-data`` its ``Content-Type`` says."""


@dataclass(frozen=True)
class FormPart:
    """
    One part of a form.

    :param name: The field name (``Content-Disposition: form-data; name=...``).
    :param filename: The file name, for a file part (``None`` for a plain field).
    :param content_type: The part's ``Content-Type`` header (``None`` when it has none).
    :param content: The part's bytes.
    """

    name: str
    filename: str | None
    content_type: str | None
    content: bytes

    @property
    def text(self) -> str:
        """The content as UTF-8 (invalid bytes replaced)."""
        return self.content.decode("utf-8", "replace")


def _params(header: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for match in _PARAM.finditer(header):
        if match.group(1) is not None:
            out[match.group(1).lower()] = match.group(2).replace('\\"', '"')
        else:
            out[match.group(3).lower()] = match.group(4)
    return out


def parse_form(content_type: str, body: bytes) -> list[FormPart]:
    """
    The parts of a ``multipart/form-data`` body, in order.

    :param content_type: The request's ``Content-Type`` header (carries the boundary).
    :param body: The request body.
    :raises MultipartError: no boundary, no closing delimiter, or a part without a field name.
    """
    boundary = _params(content_type).get("boundary")
    if not content_type.lower().startswith("multipart/form-data") or not boundary:
        raise MultipartError(f"not multipart/form-data with a boundary: {content_type!r}")
    delimiter = b"--" + boundary.encode("latin-1")
    pieces = body.split(b"\r\n" + delimiter)
    first = pieces[0]
    if not first.startswith(delimiter):
        raise MultipartError("the body does not start with the boundary")
    pieces[0] = first[len(delimiter) :]
    parts: list[FormPart] = []
    for piece in pieces:
        if piece.startswith(b"--"):
            return parts  # the closing delimiter
        if not piece.startswith(b"\r\n"):
            raise MultipartError("a boundary is not followed by CRLF")
        head, sep, content = piece[2:].partition(b"\r\n\r\n")
        if not sep:
            raise MultipartError("a part has no blank line after its headers")
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        disposition = _params(headers.get("content-disposition", ""))
        if "name" not in disposition:
            raise MultipartError("a part has no Content-Disposition name")
        parts.append(FormPart(disposition["name"], disposition.get("filename"), headers.get("content-type"), content))
    raise MultipartError("the body has no closing boundary")
