"""Microphone recording in the browser, as a small Panel JS component.

The browser records with the Web Audio API (getUserMedia → AudioContext), encodes 16-bit PCM
WAV itself and sends it base64-encoded; the server decodes it with soundfile, so no ffmpeg or
other system tool is needed. A short beep cues the start, as in d-DeVIS.
"""

from __future__ import annotations

import base64
import binascii

import param
from panel.custom import JSComponent

_ESM = r"""
function encodeWav(chunks, rate) {
  let n = 0; for (const c of chunks) n += c.length;
  const buf = new ArrayBuffer(44 + 2 * n); const v = new DataView(buf);
  const w = (o, s) => { for (let i = 0; i < s.length; i++) v.setUint8(o + i, s.charCodeAt(i)); };
  w(0, 'RIFF'); v.setUint32(4, 36 + 2 * n, true); w(8, 'WAVE'); w(12, 'fmt ');
  v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true);
  v.setUint32(24, rate, true); v.setUint32(28, rate * 2, true); v.setUint16(32, 2, true);
  v.setUint16(34, 16, true); w(36, 'data'); v.setUint32(40, 2 * n, true);
  let o = 44;
  for (const c of chunks) for (let i = 0; i < c.length; i++, o += 2) {
    const s = Math.max(-1, Math.min(1, c[i])); v.setInt16(o, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return buf;
}
function toBase64(buf) {
  const bytes = new Uint8Array(buf); let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
}
async function beep(ctx) {
  const osc = ctx.createOscillator(); const g = ctx.createGain();
  osc.frequency.value = 880; g.gain.value = 0.1; osc.connect(g); g.connect(ctx.destination);
  osc.start(); osc.stop(ctx.currentTime + 0.15);
  await new Promise(r => setTimeout(r, 200));
}
export function render({ model, el }) {
  const btn = document.createElement('button');
  btn.className = 'hs-record'; btn.textContent = '● Record ' + model.seconds + ' s';
  btn.style.cssText = 'width:100%;padding:6px;border-radius:4px;border:1px solid #0e7490;background:#ecfeff;cursor:pointer';
  const status = document.createElement('div'); status.className = 'hs-record-status';
  status.style.cssText = 'font-size:12px;color:#555;margin-top:4px';
  model.on('seconds', () => { btn.textContent = '● Record ' + model.seconds + ' s'; });
  btn.addEventListener('click', async () => {
    btn.disabled = true;
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      const ctx = new AudioContext(); await beep(ctx);
      const src = ctx.createMediaStreamSource(stream);
      const proc = ctx.createScriptProcessor(4096, 1, 1); const chunks = [];
      proc.onaudioprocess = e => chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
      src.connect(proc); proc.connect(ctx.destination);
      status.textContent = 'recording…';
      await new Promise(r => setTimeout(r, 1000 * model.seconds));
      proc.disconnect(); src.disconnect(); stream.getTracks().forEach(t => t.stop());
      const wav = encodeWav(chunks, ctx.sampleRate); await ctx.close();
      status.textContent = 'recorded ' + (wav.byteLength / 1024).toFixed(0) + ' kB';
      model.count = model.count + 1;
      model.value = toBase64(wav);
    } catch (err) {
      status.textContent = 'microphone unavailable: ' + err.message;
      model.error = String(err.message || err);
    } finally { btn.disabled = false; }
  });
  el.append(btn, status);
}
"""


class Recorder(JSComponent):
    """Records ``seconds`` of microphone audio; ``value`` is the base64 WAV, ``count`` bumps per take."""

    value = param.String(default="", doc="base64-encoded 16-bit PCM WAV of the last take")
    count = param.Integer(default=0, doc="number of takes so far (changes on every take)")
    seconds = param.Number(default=1.5, bounds=(0.5, 10.0))
    error = param.String(default="", doc="the browser's reason when recording failed")

    _esm = _ESM

    def wav_bytes(self) -> bytes:
        """The last take as WAV bytes (``ValueError`` if it is not valid base64)."""
        try:
            return base64.b64decode(self.value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"recording could not be decoded: {exc}") from exc
