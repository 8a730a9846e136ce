"""Offline Mandarin text-to-speech: libespeak-ng with its Mandarin (``cmn``) data, as
shipped by the ``espeakng-loader`` wheel (nothing is downloaded at run time).

espeak-ng is one synthesiser per process and not thread-safe: every call holds a
lock. The voice is robotic but clear, with the four tones (tests check the pitch
contours of 妈/麻/马/骂).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from dataclasses import dataclass

import numpy as np

AUDIO_OUTPUT_SYNCHRONOUS = 2
ESPEAK_CHARS_UTF8 = 1
ESPEAK_PHONEMES_IPA = 0x02

log = logging.getLogger(__name__)

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.c_void_p)  # fmt: skip


class TtsError(RuntimeError):
    pass


@dataclass(frozen=True)
class Speech:
    samples: np.ndarray  # int16, mono
    rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate


def open_library(wheel_library: str, wheel_data: str) -> tuple[ctypes.CDLL, bytes | None]:
    """The wheel's libespeak-ng with its data; where it does not load (its aarch64 build
    needs glibc >= 2.29: Kylin V10 and UOS 20 have 2.28), the OS's ``espeak-ng`` package
    with the OS's own data (``None``: the library's default path)."""
    try:
        return ctypes.cdll.LoadLibrary(wheel_library), wheel_data.encode()
    except OSError as exc:
        system = ctypes.util.find_library("espeak-ng")
        if system is None:
            raise TtsError(
                f"the espeakng-loader wheel's libespeak-ng does not load here ({exc}) and the OS "
                "has no libespeak-ng: install the OS package espeak-ng (docs/install-offline.md)"
            ) from exc
        log.warning("the espeakng-loader wheel's libespeak-ng does not load (%s): using the "
                    "OS's %s", exc, system)  # fmt: skip
        try:
            return ctypes.cdll.LoadLibrary(system), None
        except OSError as exc2:
            raise TtsError(f"neither the wheel's nor the OS's libespeak-ng loads: {exc2}") from exc2


class _Espeak:
    """The one libespeak-ng of the process (it keeps global state: one callback, one
    voice), initialised once; every use holds ``lock``."""

    lock = threading.Lock()
    lib: ctypes.CDLL | None = None
    rate = 0
    chunks: list[np.ndarray] = []

    @staticmethod
    def _collect(wav: ctypes._Pointer[ctypes.c_short], count: int, _events: int) -> int:
        if count > 0 and wav:
            _Espeak.chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    callback = _CALLBACK(_collect)

    @classmethod
    def load(cls) -> ctypes.CDLL:
        """The library (call with ``lock`` held)."""
        if cls.lib is not None:
            return cls.lib
        try:
            import espeakng_loader
        except ImportError as exc:
            raise TtsError("the espeakng-loader package is not installed (pip install "
                           "espeakng-loader): no offline TTS") from exc  # fmt: skip
        lib, data = open_library(espeakng_loader.get_library_path(),
                                 espeakng_loader.get_data_path())  # fmt: skip
        rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data, 0)
        if rate <= 0:
            where = data.decode() if data else "the OS's default"
            raise TtsError(f"espeak-ng failed to initialise with data at {where}")
        lib.espeak_SetSynthCallback(cls.callback)
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int,
                                              ctypes.c_int]  # fmt: skip
        cls.lib, cls.rate = lib, rate
        return lib


class MandarinTts:
    """``speak(text) -> Speech``; the library loads on first use."""

    def __init__(self, voice: str = "cmn", rate_wpm: int = 150) -> None:
        self.voice = voice
        self.rate_wpm = rate_wpm

    def _prepare(self) -> ctypes.CDLL:
        lib = _Espeak.load()
        if lib.espeak_SetVoiceByName(self.voice.encode()) != 0:
            raise TtsError(f"espeak-ng has no voice {self.voice!r}")
        lib.espeak_SetParameter(1, self.rate_wpm, 0)  # espeakRATE
        return lib

    def speak(self, text: str) -> Speech:
        """16-bit mono PCM of ``text`` at the synthesiser's rate (22050 Hz)."""
        if not text.strip():
            raise TtsError("nothing to say: empty text")
        data = text.encode("utf-8")
        with _Espeak.lock:
            lib = self._prepare()
            _Espeak.chunks = []
            status = lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, ESPEAK_CHARS_UTF8, None, None)
            lib.espeak_Synchronize()
            chunks, _Espeak.chunks = _Espeak.chunks, []
            rate = _Espeak.rate
        if status != 0 or not chunks:
            raise TtsError(f"espeak-ng could not speak {text!r} (status {status})")
        return Speech(np.concatenate(chunks).astype(np.int16), rate)

    def phonemes(self, text: str) -> str:
        """IPA of ``text`` with espeak's tone marks (for checking pronunciation)."""
        with _Espeak.lock:
            lib = self._prepare()
            pointer = ctypes.c_char_p(text.encode("utf-8"))
            out = []
            while pointer.value:
                chunk = lib.espeak_TextToPhonemes(ctypes.byref(pointer), ESPEAK_CHARS_UTF8,
                                                  ESPEAK_PHONEMES_IPA)  # fmt: skip
                out.append(chunk.decode("utf-8") if chunk else "")
        return " ".join(out)
