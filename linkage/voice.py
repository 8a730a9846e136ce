"""Voice warnings: the library (recorded WAV files or text for the offline TTS),
rendered once to 8 kHz PCM, played on a speaker by SIP call or sent to an HTTP
speaker API; repeat count, quiet hours.

Quiet hours hold back *automatic* warnings (a linkage rule at night near houses);
an operator's 喊话 (``manual=True``) is their decision and always goes out.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import numpy as np

from core.schedule import in_schedule
from linkage.backchannel import RtspBackchannelClient
from linkage.config import LinkageConfig, SpeakerConfig, WarningConfig
from linkage.g711 import RATE, read_wav, resample, wav_bytes
from linkage.ports import ActionFailed, Result
from linkage.sip import SipSpeakerClient
from linkage.sounds import builtin_path
from linkage.tts import MandarinTts

log = logging.getLogger(__name__)

CACHE_MAX = 64  # rendered warnings kept (free text included)


class VoiceService:
    def __init__(
        self,
        config: LinkageConfig,
        *,
        base_dir: Path | None = None,
        timezone: str = "Asia/Shanghai",
        tts: MandarinTts | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.speakers = {s.id: s for s in config.speakers}
        self.base_dir = base_dir or Path.cwd()
        self.tz = ZoneInfo(timezone)
        self.tts = tts or MandarinTts()
        self.clock = clock
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        # in progress (close() hangs them up)
        self._calls: set[SipSpeakerClient | RtspBackchannelClient] = set()
        self._closed = threading.Event()
        #: GB/T 28181 voice broadcast (linkage/gb_voice.py), set where the SIP platform runs
        self.gb: Any = None

    def close(self) -> None:
        """Hang up the calls in progress (the hub is stopping); no new ones start."""
        self._closed.set()
        with self._lock:
            for call in self._calls:
                call.cancel.set()

    # -- audio --------------------------------------------------------------------

    def audio(
        self, *, warning: str | None = None, text: str | None = None
    ) -> tuple[np.ndarray, str]:
        """8 kHz int16 PCM of a library warning or of free text, and the text it says."""
        if warning is not None:
            entry = self.config.warnings.get(warning)
            if entry is None:
                raise KeyError(f"no warning {warning!r} (one of {', '.join(self.config.warnings)})")
            key, said = f"w:{warning}", entry.text or (entry.file or "")
        elif text and text.strip():
            entry, key, said = None, f"t:{text.strip()}", text.strip()
        else:
            raise ActionFailed("nothing to say: give a warning or text")
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached, said
        recorded = self._recorded(warning, entry) if entry is not None and entry.file else None
        if recorded is not None:
            samples, rate = recorded
        else:
            speech = self.tts.speak(said)
            samples, rate = speech.samples, speech.rate
        pcm = resample(samples, rate, RATE)
        with self._lock:
            if len(self._cache) >= CACHE_MAX:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = pcm
        return pcm, said

    def _recorded(self, key: str | None, entry: WarningConfig) -> tuple[np.ndarray, int] | None:
        """The warning's file; when it cannot be read, None if the TTS can say its text
        instead (logged), else :class:`ActionFailed`."""
        assert entry.file is not None
        path = builtin_path(entry.file) or Path(entry.file)
        path = path if path.is_absolute() else self.base_dir / path
        try:
            return read_wav(path)
        except (OSError, ValueError, EOFError) as exc:
            if not entry.text.strip():
                raise ActionFailed(f"warning {key}: cannot read {path}: {exc}") from exc
            log.warning("warning %s: cannot read %s (%s); the TTS says its text", key, path, exc)
            return None

    # -- playing ------------------------------------------------------------------

    def quiet_now(self, speaker: SpeakerConfig) -> bool:
        when = dt.datetime.fromtimestamp(self.clock(), self.tz)
        return bool(speaker.quiet_hours) and in_schedule(speaker.quiet_hours, when)

    def play(
        self, speaker_id: str, *, warning: str | None = None, text: str | None = None,
        repeat: int | None = None, manual: bool = False,
    ) -> Result:  # fmt: skip
        """Play now. Raises KeyError for an unknown speaker or warning and
        :class:`ActionFailed` when the speaker does not take it."""
        speaker = self.speakers.get(speaker_id)
        if speaker is None:
            raise KeyError(f"no speaker {speaker_id!r}")
        times = repeat or speaker.repeat
        detail: dict[str, object] = {"speaker": speaker_id, "repeat": times}
        if warning:
            detail["warning"] = warning
        if not manual and self.quiet_now(speaker):
            return Result("skipped", f"speaker {speaker_id}: quiet hours", detail)
        pcm, said = self.audio(warning=warning, text=text)
        detail["text"] = said
        if speaker.kind == "sip":
            return self._sip(speaker, pcm, times, detail)
        if speaker.kind == "onvif_backchannel":
            return self._backchannel(speaker, pcm, times, detail)
        if speaker.kind == "gb28181":
            return self._gb(speaker, pcm, times, detail)
        return self._http(speaker, pcm, said, times, detail)

    def _play(self, client: SipSpeakerClient | RtspBackchannelClient, speaker: SpeakerConfig,
              pcm: np.ndarray, times: int, detail: dict[str, object]) -> Any:  # fmt: skip
        """Play through a call client (SIP, ONVIF back channel) that :meth:`close` can cut
        short; its codec, packets and seconds go into ``detail``."""
        if self._closed.is_set():
            raise ActionFailed("the voice service is stopping")
        with self._lock:
            self._calls.add(client)
        try:
            report = client.play(pcm, repeat=times, gap_s=speaker.gap_s)
        finally:
            with self._lock:
                self._calls.discard(client)
        detail.update(codec=report.codec, packets=report.packets,
                      seconds=round(report.seconds, 2))  # fmt: skip
        return report

    def _backchannel(self, speaker: SpeakerConfig, pcm: np.ndarray, times: int,
                     detail: dict[str, object]) -> Result:  # fmt: skip
        assert speaker.url is not None
        client = RtspBackchannelClient(speaker.url, username=speaker.username,
                                       password=speaker.password, codec=speaker.codec,
                                       timeout_s=speaker.timeout_s)  # fmt: skip
        report = self._play(client, speaker, pcm, times, detail)
        note = (f"camera speaker {speaker.id} (ONVIF back channel): warning played {times}× "
                f"({report.seconds:.1f} s, {report.codec.upper()})")  # fmt: skip
        if report.cancelled:
            note = (f"camera speaker {speaker.id} (ONVIF back channel): cut short after "
                    f"{report.seconds:.1f} s (the hub was stopping)")  # fmt: skip
        return Result("answered", note, detail)

    def _sip(self, speaker: SpeakerConfig, pcm: np.ndarray, times: int,
             detail: dict[str, object]) -> Result:  # fmt: skip
        assert speaker.uri is not None
        client = SipSpeakerClient(speaker.uri, local_ip=speaker.local_ip, codec=speaker.codec,
                                  timeout_s=speaker.timeout_s, username=speaker.username,
                                  password=speaker.password)  # fmt: skip
        report = self._play(client, speaker, pcm, times, detail)
        note = (f"speaker {speaker.id} answered; warning played {times}× "
                f"({report.seconds:.1f} s, {report.codec.upper()})")  # fmt: skip
        if report.hung_up_by_speaker:
            note = f"speaker {speaker.id} answered, then hung up after {report.seconds:.1f} s"
        elif report.cancelled:
            note = (
                f"speaker {speaker.id} answered; cut short after {report.seconds:.1f} s "
                "(the hub was stopping)"
            )
        return Result("answered", note, detail)

    def _gb(self, speaker: SpeakerConfig, pcm: np.ndarray, times: int,
            detail: dict[str, object]) -> Result:  # fmt: skip
        if self.gb is None:
            raise ActionFailed(f"speaker {speaker.id}: GB/T 28181 broadcast needs the hub's "
                               "SIP platform (sip.enabled)")  # fmt: skip
        assert speaker.uri is not None
        report = self.gb.play(speaker.uri, pcm, repeat=times, gap_s=speaker.gap_s,
                              timeout_s=speaker.timeout_s)  # fmt: skip
        detail.update(report)
        return Result("answered", f"speaker {speaker.id} (GB/T 28181 broadcast) answered; "
                      f"warning played {times}× ({report['seconds']:.1f} s, "
                      f"{report['codec']})", detail)  # fmt: skip

    def _http(self, speaker: SpeakerConfig, pcm: np.ndarray, said: str, times: int,
              detail: dict[str, object]) -> Result:  # fmt: skip
        assert speaker.url is not None
        body = {"speaker": speaker.id, "text": said, "repeat": times, "volume": speaker.volume,
                "warning": detail.get("warning"), "audio_format": "wav/pcm16/8000",
                "audio": base64.b64encode(wav_bytes(pcm)).decode()}  # fmt: skip
        try:
            answer = httpx.post(speaker.url, json=body, timeout=speaker.timeout_s)
        except httpx.HTTPError as exc:
            raise ActionFailed(f"speaker {speaker.id} does not answer: "
                               f"{type(exc).__name__}") from exc  # fmt: skip
        if answer.status_code >= 300:
            raise ActionFailed(f"speaker {speaker.id} refused: HTTP {answer.status_code}")
        detail["http_status"] = answer.status_code
        return Result("sent", f"speaker {speaker.id} accepted the warning (HTTP "
                              f"{answer.status_code})", detail)  # fmt: skip
