"""The upload field, as a small Panel JS component that refuses oversized files in the browser.

Panel's ``FileInput`` sends any file, base64-encoded, in one websocket message; from about 30 MB
that message exceeds the server's limit, the connection closes and the session is lost. Here the
browser compares the file's size with ``max_bytes`` (the server's ``Limits.upload_bytes``) before
reading it: an oversized file is never sent; the field says so, naming the file and the limit,
and reports ``refused`` (name and size only) so the server shows the same in the session's alert.

Every upload (and refusal) carries a new ``n``, so the same file sent again, under any name, is
a change the server sees.
"""

from __future__ import annotations

import base64
import binascii

import param
from panel.custom import JSComponent

_ESM = r"""
export function render({ model, el }) {
  const input = document.createElement('input');
  input.type = 'file';
  input.accept = model.accept;
  const status = document.createElement('div');
  status.className = 'hs-upload-status';
  const fmt = n => n.toLocaleString('en-US');
  let n = 0;
  input.addEventListener('change', () => {
    const file = input.files && input.files[0];
    input.value = '';  // the same file chosen again fires 'change' again
    if (!file) return;
    n += 1;
    if (file.size > model.max_bytes) {
      status.textContent = `${file.name}: ${fmt(file.size)} bytes, over the ` +
        `${fmt(model.max_bytes)}-byte upload limit; not uploaded (trim it first)`;
      model.refused = { name: file.name, size: file.size, n: n };
      return;
    }
    status.textContent = `uploading ${file.name} (${fmt(file.size)} bytes)…`;
    const reader = new FileReader();
    reader.onload = () => {
      const url = String(reader.result || '');
      model.upload = { name: file.name, data: url.slice(url.indexOf(',') + 1), n: n };
      status.textContent = `uploaded ${file.name}`;
    };
    reader.onerror = () => { status.textContent = `could not read ${file.name}`; };
    reader.readAsDataURL(file);
  });
  el.append(input, status);
}
"""


class Upload(JSComponent):
    """One audio file from the browser; ``upload`` is ``{name, data (base64), n}``."""

    accept = param.String(default="", doc="file types the browser offers (input accept)")
    max_bytes = param.Integer(default=20_000_000, bounds=(1, None),
                              doc="files larger than this are refused in the browser")
    upload = param.Dict(default={}, doc="the last upload: name, base64 data, sequence number")
    refused = param.Dict(default={}, doc="the last file refused in the browser: name, size, n")

    _esm = _ESM

    def file_bytes(self) -> bytes:
        """The last upload's bytes (``ValueError`` if they are not valid base64 or are more
        than ``max_bytes``: checked before decoding)."""
        data = self.upload.get("data", "")
        if not isinstance(data, str):
            raise ValueError("upload could not be decoded: not base64 text")
        if len(data) > 4 * (self.max_bytes // 3 + 1) + 4:
            raise ValueError(f"about {len(data) * 3 // 4:,} bytes, over the "
                             f"{self.max_bytes:,}-byte limit")
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"upload could not be decoded: {exc}") from exc

    def file_name(self) -> str:
        name = self.upload.get("name")
        return name if isinstance(name, str) and name else "upload"
