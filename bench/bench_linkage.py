#!/usr/bin/env python
"""Linkage figures (issue 27): alert → PTZ at preset command (aim ≤ 1 s), alert →
speaker playing (aim ≤ 3 s p99 on loopback), TTS of a 20-character warning (aim ≤ 1 s).

Real parts on 127.0.0.1: the linkage engine with its SQL recorder (SQLite), the ONVIF
PTZ adapter against ipycam (tests/peers/ipycam_ptz.py), the voice service calling a
SIPp UAS (Debian's sip-tester) whose SDP points RTP at a recorder that stamps the first
packet of each call. "alert" = the alert feed's notification after the alert's commit
(what the alert service publishes).

    .venv/bin/python bench/bench_linkage.py --alerts 20 --calls 8

The machine is shared and noisy: the figures are this run's, printed with the machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from alerts.adapters.sql import SqlUnitOfWork  # noqa: E402
from alerts.feed import AlertFeed  # noqa: E402
from bench.machine import machine_line  # noqa: E402
from linkage.config import LinkageConfig  # noqa: E402
from linkage.engine import LinkageEngine  # noqa: E402
from linkage.onvif_ptz import OnvifEndpoint, OnvifPtz  # noqa: E402
from linkage.ports import Preset  # noqa: E402
from linkage.recorder import SqlResultRecorder  # noqa: E402
from linkage.tts import MandarinTts  # noqa: E402
from linkage.voice import VoiceService  # noqa: E402
from shaobing.db import open_database  # noqa: E402
from tests.factories import make_alert, store  # noqa: E402
from tests.integration.test_linkage_voice import SCENARIO  # noqa: E402
from tests.peers.procs import free_port  # noqa: E402

WARNING_20 = "水库危险请勿靠近注意安全立即离开水边区域"  # 20 characters


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def summary(name: str, ms: list[float]) -> dict[str, Any]:
    out = {"n": len(ms), "p50_ms": round(pct(ms, 50), 1), "p99_ms": round(pct(ms, 99), 1),
           "max_ms": round(max(ms), 1)}  # fmt: skip
    print(f"{name}: n={out['n']} p50 {out['p50_ms']} ms, p99 {out['p99_ms']} ms, "
          f"max {out['max_ms']} ms")  # fmt: skip
    return out


class TimedPtz(OnvifPtz):
    done: dict[str, float]

    def goto_preset(self, camera_id: str, preset: str) -> Preset:
        result = super().goto_preset(camera_id, preset)
        self.done[preset] = time.perf_counter()
        return result


class FirstPacket:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.firsts: list[float] = []
        self._last = 0.0
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            now = time.perf_counter()
            if now - self._last > 0.3:  # a new call's first packet
                self.firsts.append(now)
            self._last = now


def bench_tts(runs: int) -> dict[str, Any]:
    tts = MandarinTts()
    t = time.perf_counter()
    tts.speak(WARNING_20)  # the first call loads libespeak-ng and its Mandarin data
    cold_ms = (time.perf_counter() - t) * 1000
    ms = []
    for _ in range(runs):
        t = time.perf_counter()
        speech = tts.speak(WARNING_20)
        ms.append((time.perf_counter() - t) * 1000)
    print(f"TTS cold (library load + 20 chars): {cold_ms:.1f} ms; audio {speech.duration_s:.1f} s")
    return {**summary(f"TTS of {len(WARNING_20)} characters", ms), "cold_ms": round(cold_ms, 1)}


def bench_ptz(tmp: Path, alerts: int) -> dict[str, Any]:
    port = free_port()
    cam = subprocess.Popen([sys.executable, "tests/peers/ipycam_ptz.py", "--onvif-port",
                            str(port), "--workdir", str(tmp / "cam"), "--user", "admin",
                            "--password", "bench-pw"], stdout=subprocess.PIPE, text=True)
    assert cam.stdout is not None and cam.stdout.readline().strip() == "READY"
    engine_db, sessions = open_database(f"sqlite:///{tmp / 'ptz.db'}")
    try:
        ptz = TimedPtz({"dam": OnvifEndpoint("127.0.0.1", port, "admin", "bench-pw")}.get)
        ptz.done = {}
        ptz.move("dam", 0.5, 0, 0)
        time.sleep(0.2)
        ptz.stop("dam")
        presets = [ptz.set_preset("dam", f"预置位{i}").name for i in range(alerts)]
        cold = OnvifPtz({"dam": OnvifEndpoint("127.0.0.1", port, "admin", "bench-pw")}.get)
        t = time.perf_counter()
        cold.goto_preset("dam", presets[0])
        cold_ms = (time.perf_counter() - t) * 1000
        cold.close()
        rules = [{"name": f"r{i}", "cameras": [f"cam-{i}"], "actions": [
            {"kind": "ptz_preset", "camera": "dam", "preset": presets[i]}]}
            for i in range(alerts)]  # fmt: skip
        config = LinkageConfig.model_validate({"rules": rules, "operator_hold_s": 1})
        feed = AlertFeed()
        recorder = SqlResultRecorder(lambda: SqlUnitOfWork(sessions), feed=feed)
        engine = LinkageEngine(config, alerts=recorder.read, recorder=recorder, ptz=ptz)
        feed.subscribe(engine.on_feed)
        engine.start()
        ms = []
        for i in range(alerts):
            alert = store(sessions, make_alert(i + 1, camera_id=f"cam-{i}"))
            t = time.perf_counter()
            feed.publish("alert", alert.id)
            deadline = time.monotonic() + 10
            while presets[i] not in ptz.done and time.monotonic() < deadline:
                time.sleep(0.001)
            ms.append((ptz.done[presets[i]] - t) * 1000)
        engine.stop()
        ptz.close()
        print(f"alert → PTZ at preset, first command to a camera (connect + presets + goto): "
              f"{cold_ms:.1f} ms")  # fmt: skip
        out = summary("alert → PTZ at preset (camera connected)", ms)
        return {**out, "cold_ms": round(cold_ms, 1)}
    finally:
        engine_db.dispose()
        cam.terminate()
        cam.wait(10)


def bench_voice(tmp: Path, calls: int) -> dict[str, Any]:
    if shutil.which("sipp") is None:
        raise SystemExit("sipp missing: apt-get install -y sip-tester")
    rtp = FirstPacket()
    scenario = SCENARIO.replace("RTP_PORT", str(rtp.port)).replace("PAYLOAD", "8")
    (tmp / "uas.xml").write_text(scenario.replace("CODEC", "PCMA"))
    sip_port = free_port()
    sipp = subprocess.Popen(["sipp", "-sf", str(tmp / "uas.xml"), "-i", "127.0.0.1", "-p",
                             str(sip_port), "-m", str(calls), "-nostdin", "-timeout", "120"],
                            cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    engine_db, sessions = open_database(f"sqlite:///{tmp / 'voice.db'}")
    try:
        config = LinkageConfig.model_validate({
            "speakers": [{"id": "spk", "kind": "sip", "uri": f"sip:spk@127.0.0.1:{sip_port}",
                          "repeat": 1}],
            "warnings": {"short": {"text": "请离开"}},
            "rules": [{"name": "voice", "actions": [
                {"kind": "voice", "speaker": "spk", "warning": "short"}]}],
        })  # fmt: skip
        voice = VoiceService(config)
        feed = AlertFeed()
        recorder = SqlResultRecorder(lambda: SqlUnitOfWork(sessions), feed=feed)
        engine = LinkageEngine(config, alerts=recorder.read, recorder=recorder, voice=voice)
        feed.subscribe(engine.on_feed)
        engine.start()
        ms = []
        for i in range(calls):
            alert = store(sessions, make_alert(i + 1))
            before = len(rtp.firsts)
            t = time.perf_counter()
            feed.publish("alert", alert.id)
            deadline = time.monotonic() + 10
            while len(rtp.firsts) == before and time.monotonic() < deadline:
                time.sleep(0.001)
            ms.append((rtp.firsts[before] - t) * 1000)
            while engine.health()["running"] and time.monotonic() < deadline + 5:
                time.sleep(0.05)  # the call ends (BYE) before the next alert
            time.sleep(0.4)
        engine.stop()
        first = ms[0]
        print(f"alert → speaker playing, first call (TTS of the warning included): {first:.1f} ms")
        return summary("alert → speaker playing (SIP INVITE → 200 → ACK → first RTP)", ms)
    finally:
        engine_db.dispose()
        sipp.kill()
        sipp.wait(5)


def bench_backchannel(calls: int) -> dict[str, Any]:
    """Alert → the first G.711 packet at a camera's back channel (RTSP DESCRIBE with the
    ONVIF Require header, Digest, SETUP, PLAY), against tests/peers/rtsp_backchannel.py."""
    from tests.peers.rtsp_backchannel import BackchannelCamera

    camera = BackchannelCamera("admin", "bench-pw").start()
    tmp = Path(tempfile.mkdtemp(prefix="bench-backchannel-"))
    engine_db, sessions = open_database(f"sqlite:///{tmp / 'bc.db'}")
    try:
        config = LinkageConfig.model_validate({
            "speakers": [{"id": "cam", "kind": "onvif_backchannel", "url": camera.url,
                          "username": "admin", "password": "bench-pw", "repeat": 1}],
            "rules": [{"name": "voice", "actions": [
                {"kind": "voice", "speaker": "cam", "warning": "reservoir"}]}],
        })  # fmt: skip
        feed = AlertFeed()
        recorder = SqlResultRecorder(lambda: SqlUnitOfWork(sessions), feed=feed)
        engine = LinkageEngine(config, alerts=recorder.read, recorder=recorder,
                               voice=VoiceService(config))  # fmt: skip
        feed.subscribe(engine.on_feed)
        engine.start()
        ms = []
        for i in range(calls):
            alert = store(sessions, make_alert(1000 + i))
            before = len(camera.sessions)
            t = time.perf_counter()
            feed.publish("alert", alert.id)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not (
                len(camera.sessions) > before and camera.sessions[before].first_at
            ):
                time.sleep(0.001)
            ms.append((camera.sessions[before].first_at - t) * 1000)  # type: ignore[operator]
            while engine.health()["running"] and time.monotonic() < deadline + 10:
                time.sleep(0.05)  # the warning ends (TEARDOWN) before the next alert
        engine.stop()
        print(f"alert → back channel playing, first call (shipped recording read): {ms[0]:.1f} ms")
        return summary("alert → camera speaker playing (ONVIF back channel, first RTP)", ms)
    finally:
        engine_db.dispose()
        camera.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--alerts", type=int, default=20)
    p.add_argument("--calls", type=int, default=8)
    p.add_argument("--tts-runs", type=int, default=20)
    p.add_argument("--json")
    args = p.parse_args()
    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="bench-linkage-") as tmp:
        out = {"machine": machine_line(), "tts": bench_tts(args.tts_runs),
               "ptz": bench_ptz(Path(tmp), args.alerts),
               "voice": bench_voice(Path(tmp), args.calls),
               "backchannel": bench_backchannel(args.calls)}  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
