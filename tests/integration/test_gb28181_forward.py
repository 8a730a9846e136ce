"""A superior platform (real SIPp) INVITEs a channel Shaobing shares as its lower platform:
the connector answers with the camera's live packets (here a real clip's H.264, MP4-style
length-prefixed, parameter sets in the extradata) re-packetised as PS over RTP — no
re-encoding — until the superior's BYE; the PS it received decodes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import pytest

from alerts.connectors import make_connector
from gb28181 import forward
from ingest.live import LiveFeed
from tests.integration.test_gb28181_connector import CHANNEL, target
from tests.peers import sipp as peers
from tests.peers.procs import free_port

pytestmark = pytest.mark.slow  # real SIPp peers


@pytest.fixture()
def camera_feed(videos_dir: Path) -> Iterator[LiveFeed]:
    """A camera read in this process: the clip's packets into its live feed at its pace."""
    feed = LiveFeed()
    stop = threading.Event()

    def read() -> None:
        with av.open(str(videos_dir / "crosswalk_people.mp4")) as container:
            stream = container.streams.video[0]
            feed.stream_opened(stream)
            tb = stream.time_base or Fraction(1, 90000)
            t0 = time.monotonic()
            for packet in container.demux(stream):
                if stop.is_set():
                    return
                if packet.size and packet.pts is not None:
                    delay = t0 + float(packet.pts * tb) - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    feed.packet(packet)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    forward.FEEDS = lambda camera_id: feed if camera_id == "gate" else None
    yield feed
    forward.FEEDS = None
    stop.set()
    thread.join(5)


def test_superior_invite_gets_the_cameras_video_as_ps(camera_feed: LiveFeed,
                                                      tmp_path: Path) -> None:  # fmt: skip
    shared = target(free_port(), "unused", channel_ids={"gate": CHANNEL})
    connector = make_connector(shared, None)  # type: ignore[arg-type]
    rtp_port = free_port()
    report, saved = tmp_path / "rx.json", tmp_path / "rx.ps"
    superior = peers.start_superior_invite(
        connector.local_port, channel=CHANNEL, rtp_port=rtp_port,  # type: ignore[attr-defined]
        rx=peers.rtp_sink_command(report, saved))  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not report.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert report.exists(), superior.logs()
        got = json.loads(report.read_text())
        assert got["payload_types"] == [96] and got["ssrcs"] == [100000009]
        assert got["in_order"] and got["packets"] > 50
        with av.open(str(saved), format="mpeg") as container:
            frames = list(container.decode(video=0))
        assert len(frames) >= 50 and (frames[0].width, frames[0].height) == (640, 360)
        superior.proc.wait(10)
        assert superior.proc.returncode == 0, superior.logs()  # 200 to INVITE and to BYE
        assert connector._forwards == {}  # type: ignore[attr-defined]
    finally:
        superior.stop()
        connector.close()
