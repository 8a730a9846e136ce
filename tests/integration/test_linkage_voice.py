"""Voice warnings: the offline Mandarin TTS (its tones), G.711, and the warning played
on an IP speaker: a real SIPp UAS (Debian's sip-tester) answers the SIP call, checks the
auto-answer header, ACK and BYE; the RTP it is sent lands on a recorder whose audio is
checked (codec, packets, duration, level, correlation with the warning). Also an HTTP
speaker (a real HTTP receiver), quiet hours, and speakers that do not answer or refuse.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import socket
import struct
import subprocess
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from linkage import g711
from linkage.config import LinkageConfig
from linkage.ports import ActionFailed
from linkage.tts import MandarinTts
from linkage.voice import VoiceService
from tests.peers.procs import free_port
from tests.peers.receiver import Receiver

# -- TTS ---------------------------------------------------------------------------------


def f0_track(x: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(times, F0 Hz) of the voiced 30 ms frames (autocorrelation, 60-250 Hz)."""
    x = x.astype(float)
    n, hop = int(0.03 * rate), int(0.01 * rate)
    floor = 0.1 * np.sqrt(np.mean(x**2))
    lo, hi = int(rate / 250), int(rate / 60)
    times, f0 = [], []
    for i in range(0, len(x) - n, hop):
        seg = x[i:i + n] * np.hanning(n)
        if np.sqrt(np.mean(seg**2)) < floor:
            continue
        ac = np.correlate(seg, seg, "full")[n - 1:]
        k = lo + int(np.argmax(ac[lo:hi]))
        if ac[k] > 0.3 * ac[0]:
            times.append(i / rate)
            f0.append(rate / k)
    return np.array(times), np.array(f0)


@pytest.fixture(scope="module")
def tts() -> MandarinTts:
    return MandarinTts()


def test_mandarin_tones_are_right(tts: MandarinTts) -> None:
    """妈 麻 马 骂 (mā má mǎ mà): the pitch contours of tones 1-4."""
    stats = {}
    for char in "妈麻马骂":
        speech = tts.speak(char)
        assert speech.rate == 22050 and 0.2 < speech.duration_s < 2
        t, f0 = f0_track(speech.samples, speech.rate)
        assert len(f0) >= 10, char
        half = len(f0) // 2
        stats[char] = {"mean": f0.mean(), "rise1": np.polyfit(t[:half], f0[:half], 1)[0],
                       "rise2": np.polyfit(t[half:], f0[half:], 1)[0]}  # fmt: skip
    means = {c: s["mean"] for c, s in stats.items()}
    assert max(means, key=means.__getitem__) == "妈"  # tone 1: high
    assert min(means, key=means.__getitem__) == "马"  # tone 3: low
    assert stats["麻"]["rise1"] > 20 and stats["麻"]["rise2"] > 20  # tone 2: rising
    assert stats["骂"]["rise2"] < -60  # tone 4: falling
    assert all(stats[c]["rise2"] > 0 for c in "妈麻马")  # only tone 4 falls at the end
    assert abs(stats["妈"]["rise2"]) < stats["麻"]["rise2"]  # tone 1 levels off


def test_tts_speaks_a_warning_and_refuses_nothing(tts: MandarinTts) -> None:
    speech = tts.speak("水库危险，请勿靠近。")
    assert 1.5 < speech.duration_s < 6
    assert np.sqrt(np.mean(speech.samples.astype(float) ** 2)) > 500
    assert "ɕ" in tts.phonemes("危险")  # xian: the pinyin voice, not letter names
    with pytest.raises(RuntimeError, match="empty"):
        tts.speak("  ")


# -- G.711 -------------------------------------------------------------------------------


def test_g711_reference_values_and_round_trip() -> None:
    # ITU-T G.711 (Sun reference) codes: 0, ±1000, ±32767
    pcm = np.array([0, 1000, -1000, 32767, -32768], dtype=np.int16)
    assert g711.encode_ulaw(pcm) == bytes([0xFF, 0xCE, 0x4E, 0x80, 0x00])
    assert g711.encode_alaw(pcm) == bytes([0xD5, 0xFA, 0x7A, 0xAA, 0x2A])
    x = (np.sin(np.arange(8000) * 2 * np.pi * 440 / 8000) * 12000).astype(np.int16)
    for codec in ("pcmu", "pcma"):
        y = g711.DECODERS[codec](g711.ENCODERS[codec](x))
        snr = 10 * np.log10(np.mean(x.astype(float) ** 2) / np.mean((x - y.astype(float)) ** 2))
        assert snr > 30, (codec, snr)
    down = g711.resample(np.tile(x, 3), 24000, 8000)
    assert len(down) == 8000


# -- the speaker: SIPp ---------------------------------------------------------------------

SCENARIO = """<?xml version="1.0" encoding="UTF-8" ?>
<scenario name="IP speaker with auto-answer">
  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="answer-after=0" search_in="hdr" header="Call-Info:" check_it="true"
            assign_to="autoanswer"/>
    </action>
  </recv>
  <send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]spk[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:speaker@[local_ip]:[local_port]>
Content-Length: 0

]]></send>
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]spk[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:speaker@[local_ip]:[local_port]>
X-Auto-Answer: [$autoanswer]
Content-Type: application/sdp
Content-Length: [len]

v=0
o=speaker 1 1 IN IP4 [local_ip]
s=speaker
c=IN IP4 [local_ip]
t=0 0
m=audio RTP_PORT RTP/AVP PAYLOAD
a=rtpmap:PAYLOAD CODEC/8000
a=recvonly

]]></send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
"""

BUSY = """<?xml version="1.0" encoding="UTF-8" ?>
<scenario name="busy speaker">
  <recv request="INVITE"/>
  <send><![CDATA[
SIP/2.0 486 Busy Here
[last_Via:]
[last_From:]
[last_To:];tag=[pid]busy[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <recv request="ACK"/>
</scenario>
"""


class RtpRecorder:
    """Receives RTP on 127.0.0.1:port until stopped; the packets as (header, payload)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.packets: list[tuple[tuple[int, int, int, int, int], bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            self.packets.append((struct.unpack("!BBHII", data[:12]), data[12:]))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


class Sipp:
    def __init__(self, tmp: Path, scenario: str, **replace: str) -> None:
        if shutil.which("sipp") is None:
            pytest.fail("sipp is not installed (apt-get install -y sip-tester)", pytrace=False)
        for key, value in replace.items():
            scenario = scenario.replace(key, value)
        path = tmp / f"uas-{free_port()}.xml"
        path.write_text(scenario)
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["sipp", "-sf", str(path), "-i", "127.0.0.1", "-p", str(self.port), "-m", "1",
             "-nostdin", "-timeout", "30", "-timeout_error", "-trace_err"],
            cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(0.3)  # SIPp binds its port

    def wait(self) -> int:
        return self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def service(speakers: list[dict[str, object]], **config: object) -> VoiceService:
    return VoiceService(LinkageConfig.model_validate({"speakers": speakers, **config}))


@pytest.fixture
def recorder() -> Iterator[RtpRecorder]:
    rec = RtpRecorder()
    yield rec
    rec.stop()


@pytest.mark.parametrize(("codec", "pt"), [("PCMA", "8"), ("PCMU", "0")])
def test_warning_played_on_sip_speaker(tmp_path: Path, recorder: RtpRecorder, codec: str,
                                       pt: str) -> None:  # fmt: skip
    sipp = Sipp(tmp_path, SCENARIO, RTP_PORT=str(recorder.port), PAYLOAD=pt, CODEC=codec)
    try:
        voice = service([{"id": "dam", "kind": "sip", "uri": f"sip:speaker@127.0.0.1:{sipp.port}",
                          "repeat": 2, "gap_s": 0.5}])  # fmt: skip
        result = voice.play("dam", warning="reservoir")
        assert sipp.wait() == 0, sipp.proc.stderr.read() if sipp.proc.stderr else ""
    finally:
        sipp.stop()
    time.sleep(0.3)
    assert result.outcome == "answered", result
    assert result.detail["codec"] == codec.lower() and result.detail["repeat"] == 2
    source, _ = voice.audio(warning="reservoir")
    packets = recorder.packets
    assert len(packets) == result.detail["packets"]
    headers = [h for h, _ in packets]
    assert {h[1] & 0x7F for h in headers} == {int(pt)}
    assert headers[0][1] & 0x80 and not any(h[1] & 0x80 for h in headers[1:])  # marker
    seqs = [h[2] for h in headers]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:], strict=False))
    assert all(len(p) == 160 for _, p in packets)
    audio = g711.DECODERS[codec.lower()](b"".join(p for _, p in packets))
    expected_s = (2 * len(source) + 0.5 * 8000) / 8000
    assert abs(len(audio) / 8000 - expected_s) < 0.021  # within one packet
    first, gap = audio[:len(source)], audio[len(source):len(source) + 4000]
    rms = np.sqrt(np.mean(first.astype(float) ** 2))
    assert rms > 500 and np.abs(gap).max() < 64  # speech, then the gap's silence
    reference = g711.DECODERS[codec.lower()](g711.ENCODERS[codec.lower()](source))
    corr = np.corrcoef(first.astype(float), reference.astype(float))[0, 1]
    assert corr > 0.99  # the warning itself, not some sound
    second = audio[len(source) + 4000:2 * len(source) + 4000]
    assert np.corrcoef(second.astype(float), reference.astype(float))[0, 1] > 0.99


def test_speaker_that_refuses_or_does_not_answer(tmp_path: Path) -> None:
    busy = Sipp(tmp_path, BUSY)
    try:
        voice = service([
            {"id": "busy", "kind": "sip", "uri": f"sip:spk@127.0.0.1:{busy.port}"},
            {"id": "dead", "kind": "sip", "uri": f"sip:spk@127.0.0.1:{free_port()}",
             "timeout_s": 1.5},
        ])  # fmt: skip
        with pytest.raises(ActionFailed, match="refused: 486 Busy Here"):
            voice.play("busy", warning="crowd")
        assert busy.wait() == 0
    finally:
        busy.stop()
    started = time.monotonic()
    with pytest.raises(ActionFailed, match=r"did not answer"):
        voice.play("dead", text="请离开")
    assert time.monotonic() - started < 5  # bounded: never a stuck linkage
    with pytest.raises(KeyError, match="no speaker 'nope'"):
        voice.play("nope", warning="crowd")
    with pytest.raises(KeyError, match="no warning 'nope'"):
        voice.play("busy", warning="nope")


def test_http_speaker_and_quiet_hours() -> None:
    with Receiver() as rx:
        voice = service([
            {"id": "web", "kind": "http", "url": rx.url, "volume": 80, "repeat": 3},
            {"id": "night", "kind": "http", "url": rx.url,
             "quiet_hours": [{"start": "00:00", "end": "24:00"}]},
        ])  # fmt: skip
        result = voice.play("web", warning="level_crossing")
        assert result.outcome == "sent" and result.detail["http_status"] == 200
        [(_headers, body, _path)] = rx.wait_for(1)
        sent = json.loads(body)
        assert sent["text"] == "火车即将通过，请勿穿越道口。" and sent["repeat"] == 3
        assert sent["volume"] == 80
        with wave.open(io.BytesIO(base64.b64decode(sent["audio"]))) as w:
            assert w.getframerate() == 8000 and w.getnframes() > 8000
        quiet = voice.play("night", warning="crowd")  # automatic: held back
        assert quiet.outcome == "skipped" and "quiet hours" in quiet.note
        assert len(rx.requests) == 1
        manual = voice.play("night", warning="crowd", manual=True)  # 喊话 goes out
        assert manual.outcome == "sent" and len(rx.requests) == 2
        rx.status = 503
        with pytest.raises(ActionFailed, match="refused: HTTP 503"):
            voice.play("web", text="请注意")


AUTH = """<?xml version="1.0" encoding="UTF-8" ?>
<scenario name="IP speaker asking for digest authentication">
  <recv request="INVITE"/>
  <send><![CDATA[
SIP/2.0 401 Unauthorized
[last_Via:]
[last_From:]
[last_To:];tag=[pid]auth[call_number]
[last_Call-ID:]
[last_CSeq:]
WWW-Authenticate: Digest realm="speaker", nonce="47ebe028cda119c35d4877b383027d28da013815"
Content-Length: 0

]]></send>
  <recv request="ACK"/>
  <recv request="INVITE">
    <action>
      <verifyauth assign_to="authvalid" username="spk-user" password="Spk-pw-2026"/>
    </action>
  </recv>
  <nop hide="true" test="authvalid" next="good"/>
  <send next="end"><![CDATA[
SIP/2.0 403 Forbidden
[last_Via:]
[last_From:]
[last_To:];tag=[pid]auth[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <label id="good"/>
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]auth[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:speaker@[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=speaker 1 1 IN IP4 [local_ip]
s=speaker
c=IN IP4 [local_ip]
t=0 0
m=audio RTP_PORT RTP/AVP 8
a=rtpmap:8 PCMA/8000

]]></send>
  <recv request="ACK"/>
  <recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <label id="end"/>
</scenario>
"""


@pytest.mark.parametrize("password", ["Spk-pw-2026", "wrong-password"])
def test_sip_speaker_with_digest_authentication(tmp_path: Path, recorder: RtpRecorder,
                                                password: str) -> None:  # fmt: skip
    sipp = Sipp(tmp_path, AUTH, RTP_PORT=str(recorder.port))
    try:
        voice = service([{"id": "spk", "kind": "sip", "uri": f"sip:spk@127.0.0.1:{sipp.port}",
                          "username": "spk-user", "password": password, "repeat": 1,
                          "timeout_s": 3}])  # fmt: skip
        if password == "wrong-password":
            with pytest.raises(ActionFailed, match="authentication failed: 403") as failed:
                voice.play("spk", text="请离开")
            assert password not in str(failed.value)
        else:
            result = voice.play("spk", text="请离开")
            assert result.outcome == "answered" and result.detail["codec"] == "pcma"
            time.sleep(0.3)
            assert len(recorder.packets) == result.detail["packets"] > 10
        assert "Spk-pw-2026" not in repr(voice.speakers["spk"])
    finally:
        sipp.stop()


def test_stopping_hangs_up_a_call_in_progress(tmp_path: Path, recorder: RtpRecorder) -> None:
    sipp = Sipp(tmp_path, SCENARIO, RTP_PORT=str(recorder.port), PAYLOAD="8", CODEC="PCMA")
    try:
        voice = service([{"id": "dam", "kind": "sip", "uri": f"sip:speaker@127.0.0.1:{sipp.port}",
                          "repeat": 5}])  # fmt: skip
        results: list[object] = []
        call = threading.Thread(target=lambda: results.append(voice.play("dam", warning="crowd")))
        call.start()
        deadline = time.monotonic() + 10
        while len(recorder.packets) < 25 and time.monotonic() < deadline:
            time.sleep(0.02)  # half a second of audio has arrived
        voice.close()
        call.join(3)
        assert not call.is_alive()
        assert sipp.wait() == 0  # the speaker got its BYE
    finally:
        sipp.stop()
    [result] = results
    assert "cut short" in result.note and result.detail["seconds"] < 3  # type: ignore[attr-defined]
    with pytest.raises(ActionFailed, match="stopping"):
        voice.play("dam", warning="crowd")
