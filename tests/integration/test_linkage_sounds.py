"""The warning recordings shipped in linkage/sounds/ (issue 27): one for every built-in
warning, 8 kHz G.711 A-law WAV, made by the project's own TTS (``python -m linkage.sounds``)
from the warning's text — checked by correlation with the TTS saying it now — and played
instead of speaking the text; a missing file falls back to the TTS when there is a text."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from linkage import g711
from linkage.config import DEFAULT_WARNINGS, LinkageConfig
from linkage.ports import ActionFailed
from linkage.sounds import SOUNDS_DIR, builtin_path, generate
from linkage.tts import MandarinTts
from linkage.voice import VoiceService


def test_every_builtin_warning_has_its_recording(tmp_path: Path) -> None:
    fresh = {p.stem: p for p in generate(tmp_path, MandarinTts())}
    assert set(fresh) == set(DEFAULT_WARNINGS)
    for key, warning in DEFAULT_WARNINGS.items():
        assert warning.file == f"builtin:{key}" and warning.text
        path = builtin_path(warning.file)
        assert path is not None and path.parent == SOUNDS_DIR and path.is_file(), key
        head = path.read_bytes()[:40]
        assert head[:4] == b"RIFF" and head[8:16] == b"WAVEfmt "
        tag, channels, rate = struct.unpack("<HHI", head[20:28])
        assert (tag, channels, rate) == (6, 1, 8000), key  # A-law, mono, 8 kHz
        shipped, shipped_rate = g711.read_wav(path)
        assert shipped_rate == 8000 and len(shipped) / 8000 > 1.0, key
        assert np.sqrt(np.mean(shipped.astype(float) ** 2)) > 500, key
    # each says its own text: its loudness contour matches what the TTS says now for that
    # text (the waveform itself differs by a few samples from one TTS call to the next) far
    # better than any other warning's
    for key, warning in DEFAULT_WARNINGS.items():
        path = builtin_path(warning.file or "")
        assert path is not None
        shipped = envelope(g711.read_wav(path)[0])
        scores = {other: similarity(shipped, envelope(g711.read_wav(p)[0]))
                  for other, p in fresh.items()}  # fmt: skip
        assert scores[key] > 0.9, (key, scores)
        assert max(scores, key=lambda k: scores[k]) == key, (key, scores)


def envelope(pcm: np.ndarray) -> np.ndarray:
    """Loudness (dB) of each 20 ms frame."""
    frames = pcm[: len(pcm) // 160 * 160].astype(float).reshape(-1, 160)
    return 20 * np.log10(np.sqrt((frames**2).mean(axis=1)) + 1.0)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


def test_the_recording_is_played_and_a_missing_one_is_spoken(tmp_path: Path) -> None:
    config = LinkageConfig.model_validate({"warnings": {
        **{k: w.model_dump() for k, w in DEFAULT_WARNINGS.items()},
        "gone": {"text": "请离开", "file": "builtin:no-such-recording"},
        "file_only": {"file": "missing.wav"},
    }})  # fmt: skip
    voice = VoiceService(config, base_dir=tmp_path)
    played, said = voice.audio(warning="reservoir")
    shipped, _ = g711.read_wav(SOUNDS_DIR / "reservoir.wav")
    assert said == "水库危险，请勿靠近。" and np.array_equal(played, shipped)
    spoken, said = voice.audio(warning="gone")  # the TTS says the text instead
    assert said == "请离开" and len(spoken) > 8000 * 0.3
    with pytest.raises(ActionFailed, match="cannot read .*missing.wav"):
        voice.audio(warning="file_only")


@pytest.mark.parametrize("codec", ["pcma", "pcmu"])
def test_g711_wav_round_trip(tmp_path: Path, codec: str) -> None:
    t = np.arange(8000) / 8000
    pcm = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    path = tmp_path / "tone.wav"
    path.write_bytes(g711.g711_wav_bytes(pcm[:7999], codec))  # odd length: a pad byte
    back, rate = g711.read_wav(path)
    assert rate == 8000 and len(back) == 7999
    assert np.array_equal(back, g711.DECODERS[codec](g711.ENCODERS[codec](pcm[:7999])))
    path.write_bytes(g711.wav_bytes(pcm))  # 16-bit PCM still read
    assert np.array_equal(g711.read_wav(path)[0], pcm)
    path.write_bytes(b"RIFF\x04\x00\x00\x00WAVE")
    with pytest.raises(ValueError, match="without data"):
        g711.read_wav(path)
