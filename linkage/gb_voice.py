"""Voice warnings through GB/T 28181 voice broadcast (语音广播, §9.12): the hub's SIP
platform tells the device (Notify Broadcast), the device INVITEs the hub for audio, and
the warning goes to it as G.711 over RTP. A speaker of ``kind: gb28181`` with
``uri: gb28181://<device id>/<audio output id>``; :class:`GbBroadcast` is what
:class:`linkage.voice.VoiceService` calls for it (wired by :func:`route_gb_voice`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from gb28181.channels import parse_source_url
from linkage.g711 import RATE, encode_alaw, encode_ulaw
from linkage.ports import ActionFailed


class GbBroadcast:
    def __init__(self, server: Any) -> None:
        self.server = server  # a gb28181.server.SipServer

    def play(self, uri: str, pcm: np.ndarray, *, repeat: int = 1, gap_s: float = 1.0,
             timeout_s: float = 5.0) -> dict[str, Any]:  # fmt: skip
        """Broadcast 8 kHz int16 ``pcm`` ``repeat`` times with ``gap_s`` of silence
        between; what was sent (codec, packets, seconds). :class:`ActionFailed` when the
        device is offline, refuses or never calls back for the audio."""
        device_id, target_id = parse_source_url(uri)
        gap = np.zeros(int(gap_s * RATE), dtype=np.int16)
        parts: list[np.ndarray] = []
        for i in range(repeat):
            parts += [gap, pcm] if i else [pcm]
        audio = np.concatenate(parts) if parts else pcm
        payload = {"PCMA": encode_alaw(audio), "PCMU": encode_ulaw(audio)}
        seconds = len(audio) / RATE
        try:
            return dict(self.server.call(
                self.server.broadcast(device_id, target_id, payload, timeout=timeout_s * 2),
                timeout=timeout_s * 3 + seconds + 5))  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - said plainly in the action's result
            raise ActionFailed(f"GB/T 28181 broadcast to {target_id}: {exc}") from None


def route_gb_voice(linkage: Any, server: Any) -> GbBroadcast | None:
    """Give a built :class:`~linkage.wiring.Linkage`'s voice service the broadcast (when
    it has speakers at all)."""
    voice = getattr(linkage, "voice", None)
    if voice is None or not hasattr(voice, "gb"):
        return None
    voice.gb = GbBroadcast(server)
    return voice.gb
