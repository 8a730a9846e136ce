"""G.711 audio (pure numpy): resampling to 8 kHz, μ-law (PCMU) and A-law (PCMA)
encoding and decoding, WAV reading. The decoders serve the tests and the HTTP
speaker's WAV; the encoders are what goes on the wire."""

from __future__ import annotations

import io
import struct
import wave
from pathlib import Path

import numpy as np

RATE = 8000


def resample(samples: np.ndarray, rate: int, to: int = RATE) -> np.ndarray:
    """int16 ``samples`` at ``rate`` → int16 at ``to`` (windowed-sinc low-pass at 0.45·to,
    then linear interpolation: plenty for speech into a telephone band)."""
    x = samples.astype(np.float64)
    if rate == to:
        return samples.astype(np.int16)
    if to < rate:
        cutoff = 0.45 * to / rate  # in cycles per input sample
        taps = 101
        n = np.arange(taps) - (taps - 1) / 2
        h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.hamming(taps)
        x = np.convolve(x, h / h.sum(), mode="same")
    length = int(round(len(x) * to / rate))
    positions = np.arange(length) * rate / to
    y = np.interp(positions, np.arange(len(x)), x)
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


_SEG_UEND = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])


def encode_ulaw(pcm: np.ndarray) -> bytes:
    """16-bit linear → G.711 μ-law (the ITU/Sun reference: 14-bit, bias 0x21)."""
    x = pcm.astype(np.int32) >> 2
    mask = np.where(x < 0, 0x7F, 0xFF)
    x = np.minimum(np.abs(x), 8159) + 0x21
    seg = np.searchsorted(_SEG_UEND, x)  # first segment whose end ≥ x
    value = np.where(seg >= 8, 0x7F, (seg << 4) | ((x >> (seg + 1)) & 0x0F))  # 8: clipped
    return ((value ^ mask) & 0xFF).astype(np.uint8).tobytes()


def decode_ulaw(data: bytes) -> np.ndarray:
    u = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def encode_alaw(pcm: np.ndarray) -> bytes:
    """16-bit linear → G.711 A-law (ITU-T, even bits inverted with 0x55)."""
    x = pcm.astype(np.int32) >> 3  # 13-bit
    sign = np.where(x >= 0, 0x80, 0x00)
    magnitude = np.minimum(np.where(x >= 0, x, -x - 1), 0x0FFF)
    exponent = np.where(magnitude >= 32, np.floor(np.log2(np.maximum(magnitude, 1))) - 4, 0)
    exponent = np.clip(exponent, 0, 7).astype(np.int32)
    mantissa = np.where(exponent == 0, magnitude >> 1, magnitude >> exponent) & 0x0F
    return ((sign | (exponent << 4) | mantissa) ^ 0x55).astype(np.uint8).tobytes()


def decode_alaw(data: bytes) -> np.ndarray:
    a = np.frombuffer(data, dtype=np.uint8).astype(np.int32) ^ 0x55
    sign = a & 0x80
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8,
                         ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))  # fmt: skip
    return np.where(sign != 0, magnitude, -magnitude).astype(np.int16)


ENCODERS = {"pcmu": encode_ulaw, "pcma": encode_alaw}
DECODERS = {"pcmu": decode_ulaw, "pcma": decode_alaw}
PAYLOAD_TYPES = {"pcmu": 0, "pcma": 8}


#: WAV format tags of G.711 (the ``fmt `` chunk's first field)
WAV_G711 = {6: "pcma", 7: "pcmu"}
WAV_TAG = {codec: tag for tag, codec in WAV_G711.items()}


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono int16 samples and rate of a WAV: PCM 8/16-bit or G.711 A-law/μ-law (stereo
    is mixed down)."""
    data = path.read_bytes()
    tag, channels, rate, width, frames = _riff(data, path)
    if tag in WAV_G711:
        x = DECODERS[WAV_G711[tag]](frames).astype(np.int32)
    elif tag == 1 and width == 2:
        x = np.frombuffer(frames[: len(frames) // 2 * 2], dtype="<i2").astype(np.int32)
    elif tag == 1 and width == 1:
        x = (np.frombuffer(frames, dtype=np.uint8).astype(np.int32) - 128) << 8
    else:
        raise ValueError(f"{path}: WAV format {tag}, {8 * width}-bit not supported "
                         "(8/16-bit PCM, G.711 A-law or μ-law)")  # fmt: skip
    if channels > 1:
        x = x[: len(x) // channels * channels].reshape(-1, channels).mean(axis=1).astype(np.int32)
    return x.astype(np.int16), rate


def _riff(data: bytes, path: Path) -> tuple[int, int, int, int, bytes]:
    """(format tag, channels, rate, bytes per sample, the data chunk) of a WAV file."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a WAV file")
    fmt: tuple[int, int, int, int] | None = None
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = data[pos + 8 : pos + 8 + size]
        if chunk == b"fmt " and len(body) >= 16:
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            fmt = (tag, channels, rate, max(1, bits // 8))
        elif chunk == b"data":
            if fmt is None:
                raise ValueError(f"{path}: WAV data before its format")
            return (*fmt, body)
        pos += 8 + size + (size & 1)
    raise ValueError(f"{path}: WAV file without data")


def g711_wav_bytes(pcm: np.ndarray, codec: str = "pcma", rate: int = RATE) -> bytes:
    """A mono G.711 WAV file (format 6 A-law or 7 μ-law) of ``pcm`` at 8 kHz."""
    payload = ENCODERS[codec](pcm.astype(np.int16))
    fmt = struct.pack("<HHIIHHH", WAV_TAG[codec], 1, rate, rate, 1, 8, 0)
    fact = struct.pack("<I", len(payload))
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"fact" + struct.pack("<I", 4) + fact
            + b"data" + struct.pack("<I", len(payload)) + payload
            + (b"\0" if len(payload) & 1 else b""))  # fmt: skip
    return b"RIFF" + struct.pack("<I", len(body)) + body


def wav_bytes(pcm: np.ndarray, rate: int = RATE) -> bytes:
    """A 16-bit mono WAV file of ``pcm``."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())
    return buf.getvalue()
