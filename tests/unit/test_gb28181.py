"""GB/T 28181 pure parts: SIP parsing/building and digest, MANSCDP XML in every
encoding, the device registry state machine, catalog → camera, SDP, RTP, PS."""

from __future__ import annotations

import pytest

from gb28181 import manscdp, sdp
from gb28181 import sip as s
from gb28181.channels import area_of, camera_for, parse_source_url
from gb28181.config import SipConfig
from gb28181.manscdp import CatalogItem
from gb28181.registry import Registry
from gb28181.rtp import Reorderer, build_rtp, frame_4571, parse_rtp, split_4571

REGISTER = (
    b"REGISTER sip:34020000002000000001@3402000000 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bK1\r\n"
    b"From: <sip:34020000001320000001@3402000000>;tag=abc\r\n"
    b"To: <sip:34020000001320000001@3402000000>\r\n"
    b"Call-ID: call-1\r\nCSeq: 1 REGISTER\r\n"
    b"Contact: <sip:34020000001320000001@10.0.0.5:5060>\r\nExpires: 3600\r\n"
    b"Content-Length: 0\r\n\r\n"
)


# -- SIP -------------------------------------------------------------------------------


def test_parse_register_and_build_response() -> None:
    msg = s.parse_message(REGISTER)
    assert msg.method == "REGISTER" and msg.cseq == (1, "REGISTER")
    assert s.user_of(msg.header("From") or "") == "34020000001320000001"
    assert s.expires_of(msg, 60) == 3600
    resp = s.response(msg, 200, "OK", to_tag="t1", headers=[("Date", s.sip_date(0))])
    back = s.parse_message(resp.encode())
    assert back.status == 200 and back.call_id == "call-1"
    assert s.tag_of(back.header("To") or "") == "t1"
    assert back.header("Date", ) is not None


def test_compact_headers_and_body_length() -> None:
    raw = (b"MESSAGE sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bKx\r\nf: <sip:1@d>;tag=1\r\n"
           b"t: <sip:2@d>\r\ni: cid\r\nCSeq: 2 MESSAGE\r\nl: 5\r\n\r\nhelloEXTRA")
    msg = s.parse_message(raw)
    assert msg.call_id == "cid" and msg.body == b"hello"


@pytest.mark.parametrize("raw, reason", [
    (b"GARBAGE\r\n\r\n", "not a SIP request line"),
    (b"REGISTER sip:a SIP/2.0\r\nVia: x\r\n\r\n", "no From"),
    (REGISTER.replace(b"CSeq: 1 REGISTER", b"CSeq: one"), "bad CSeq"),
    (REGISTER.replace(b"Content-Length: 0", b"Content-Length: 99"), "shorter"),
    (b"x" * (s.MAX_MESSAGE_BYTES + 1), "over"),
])  # fmt: skip
def test_malformed_sip_is_refused_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(s.SipParseError, match=reason):
        s.parse_message(raw)


def test_split_tcp_stream() -> None:
    two = REGISTER + b"\r\n" + REGISTER
    msgs, rest = s.split_stream(two + REGISTER[:30])
    assert len(msgs) == 2 and rest == REGISTER[:30]


def test_digest_round_trip_and_wrong_password() -> None:
    nonces = s.NonceSource(ttl_s=60)
    ch = s.challenge("3402000000", nonces.make(1000.0))
    auth = s.authorization(ch, username="34020000001320000001", password="pw",
                           method="REGISTER", uri="sip:34020000002000000001@3402000000")
    ok = dict(method="REGISTER", realm="3402000000", nonces=nonces, now=1010.0)
    assert s.check_authorization(auth, password="pw", **ok) is None  # type: ignore[arg-type]
    assert s.check_authorization(auth, password="nope", **ok) == "wrong password"  # type: ignore[arg-type]
    late = {**ok, "now": 1100.0}
    assert s.check_authorization(auth, password="pw", **late) == "stale"  # type: ignore[arg-type]
    forged = auth.replace(auth.split('nonce="')[1].split('"')[0], "0" * 24)
    assert s.check_authorization(forged, password="pw", **ok) == "stale"  # type: ignore[arg-type]


def test_digest_with_qop_matches_rfc_2617() -> None:
    # RFC 2617 §3.5's example (HTTP, but the same arithmetic).
    resp = s.digest_response(username="Mufasa", realm="testrealm@host.com",
                             password="Circle Of Life", method="GET", uri="/dir/index.html",
                             nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", qop="auth",
                             nc="00000001", cnonce="0a4f113b")  # fmt: skip
    assert resp == "6629fae49393a05397450978507c4ef1"


# -- MANSCDP ---------------------------------------------------------------------------

CATALOG = """<?xml version="1.0" encoding="{enc}"?>
<Response><CmdType>Catalog</CmdType><SN>7</SN><DeviceID>34020000001180000001</DeviceID>
<SumNum>2</SumNum><DeviceList Num="1"><Item><DeviceID>34150201001310000001</DeviceID>
<Name>东门路口</Name><CivilCode>34150201</CivilCode><Status>OFF</Status>
<Longitude>116.5</Longitude><Latitude>31.7</Latitude><Info><PTZType>1</PTZType></Info></Item>
</DeviceList></Response>"""


@pytest.mark.parametrize("declared, codec", [
    ("GB2312", "gb2312"), ("GBK", "gbk"), ("UTF-8", "utf-8"),
    ("GB2312", "utf-8"),  # declared GB2312, sent as UTF-8
    (None, "gb18030"),  # no declaration at all
])  # fmt: skip
def test_catalog_in_every_encoding(declared: str | None, codec: str) -> None:
    text = CATALOG.format(enc=declared or "X")
    if declared is None:
        text = text.split("?>", 1)[1]
    body = manscdp.parse_body(text.encode(codec))
    total, items = manscdp.catalog_items(body)
    assert (body.cmd, body.sn, total) == ("Catalog", 7, 2)
    item = items[0]
    assert item.name == "东门路口" and item.online is False and item.ptz_type == 1
    assert (item.longitude, item.latitude) == (116.5, 31.7) and item.type_code == "131"


@pytest.mark.parametrize("raw, reason", [
    (b"<Response><SN>1</SN></Response>", "no CmdType"),
    (b"<Notify><CmdType>Keepalive</CmdType></Notify>", "no DeviceID"),
    (b"<Notify><CmdType>Keepalive", "invalid XML"),
    (b'<!DOCTYPE x [<!ENTITY a "b">]><Notify><CmdType>&a;</CmdType></Notify>', "invalid XML"),
])  # fmt: skip
def test_bad_bodies_are_refused(raw: bytes, reason: str) -> None:
    with pytest.raises(manscdp.ManscdpError, match=reason):
        manscdp.parse_body(raw)


def test_built_bodies_parse_back() -> None:
    q = manscdp.parse_body(manscdp.catalog_query(5, "34020000001180000001"))
    assert (q.root, q.cmd, q.sn) == ("Query", "Catalog", 5)
    alarm = manscdp.parse_body(manscdp.alarm_notify(
        9, "34150201001310000001", priority=1, method=5, time_iso="2026-12-07T10:00:00",
        description="入侵: 人员进入围栏", alarm_type=6))  # fmt: skip
    assert alarm.text("AlarmMethod") == "5"
    assert alarm.text("AlarmDescription") == "入侵: 人员进入围栏"
    info = alarm.element.find("Info")
    assert info is not None and info.findtext("AlarmType") == "6"


# -- the registry state machine -----------------------------------------------------------

DEV = "34020000001180000001"
CH1, CH2 = "34150201001310000001", "34150200001320000002"


def _reg(r: Registry, now: float, call_id: str = "c1") -> bool:
    return r.register(DEV, host="h", port=1, transport="udp", expires=600, call_id=call_id,
                      now=now).new_session  # fmt: skip


def test_register_refresh_and_new_session() -> None:
    r = Registry(keepalive_interval_s=60, keepalive_misses=3)
    assert _reg(r, 0) is True
    assert _reg(r, 30) is False  # refresh by the same Call-ID
    assert _reg(r, 40, "c2") is True  # rebooted: a new Call-ID, query the catalog again


def test_three_missed_keepalives_make_the_device_and_channels_offline() -> None:
    r = Registry(keepalive_interval_s=60, keepalive_misses=3)
    _reg(r, 0)
    r.start_catalog(DEV, 1, 0)
    r.catalog_page(DEV, 1, 2, [CatalogItem(CH1, "a"), CatalogItem(CH2, "b", status="OFF")], 1)
    assert r.keepalive(DEV, 60) is not None
    assert not r.tick(200)  # 140 s since the last keepalive: 2 missed
    changes = r.tick(241)  # 181 s: 3 missed
    assert changes.went_offline == [DEV] and changes.online == {CH1: False, CH2: False}
    back = r.keepalive(DEV, 250)
    assert back is not None and back.came_online == [DEV] and back.online == {CH1: True,
                                                                              CH2: False}


def test_unregister_and_registration_expiry() -> None:
    r = Registry()
    _reg(r, 0)
    assert r.unregister(DEV, 5).went_offline == [DEV]
    assert r.keepalive(DEV, 700) is None  # expired and offline: must register again
    _reg(r, 800)
    assert r.tick(800 + 601).went_offline == [DEV]


def test_catalog_pages_collected_until_sumnum() -> None:
    r = Registry()
    _reg(r, 0)
    r.start_catalog(DEV, 3, 0)
    assert r.catalog_page(DEV, 3, 2, [CatalogItem(CH1)], 1) is None
    done = r.catalog_page(DEV, 3, 2, [CatalogItem(CH2)], 2)
    assert done is not None and {i.id for _, i in done.upsert} == {CH1, CH2}
    # A later complete catalog without CH2 removes it.
    r.start_catalog(DEV, 4, 10)
    done = r.catalog_page(DEV, 4, 1, [CatalogItem(CH1)], 11)
    assert done is not None and done.removed == [CH2]


def test_incomplete_catalog_is_closed_after_the_timeout() -> None:
    r = Registry(catalog_timeout_s=30)
    _reg(r, 0)
    r.start_catalog(DEV, 3, 0)
    assert r.catalog_page(DEV, 3, 5, [CatalogItem(CH1)], 1) is None
    changes = r.tick(40)
    assert [i.id for _, i in changes.upsert] == [CH1]
    assert r.devices[DEV].last_error == "catalog incomplete: 1 of 5 item(s) arrived"


def test_oversized_catalog_is_cut() -> None:
    r = Registry(max_channels=2)
    _reg(r, 0)
    items = [CatalogItem(f"3415020000131{i:07d}") for i in range(5)]
    done = r.catalog_page(DEV, 1, 5, items, 1)
    assert done is not None and len(r.devices[DEV].channels) == 2
    assert "cut at 2" in (r.devices[DEV].last_error or "")


def test_catalog_notifications() -> None:
    r = Registry()
    _reg(r, 0)
    r.catalog_page(DEV, 1, 1, [CatalogItem(CH1)], 1)
    off = r.catalog_notify(DEV, [CatalogItem(CH1, event="OFF")])
    assert off is not None and off.online == {CH1: False}
    add = r.catalog_notify(DEV, [CatalogItem(CH2, "新", event="ADD")])
    assert add is not None and add.upsert[0][1].id == CH2
    gone = r.catalog_notify(DEV, [CatalogItem(CH1, event="DEL")])
    assert gone is not None and gone.removed == [CH1]
    assert r.catalog_notify("34020000001180000999", [CatalogItem(CH1)]) is None


# -- catalog → camera ---------------------------------------------------------------------


def test_area_from_civil_code() -> None:
    names = {"341502": "金安区", "34150201": "东市街道"}
    assert area_of("34150201", names).path() == ("金安区", "东市街道")
    assert area_of("341502", names).path() == ("金安区",)
    assert area_of("341502010203", names).path() == ("金安区", "东市街道", "341502010203")
    assert area_of("3415020102", {}).path() == ("341502", "34150201", "3415020102")
    assert area_of("34150200", names).path() == ("金安区",)  # township 00: none


def test_channel_becomes_a_camera_without_credentials() -> None:
    item = CatalogItem(CH1, "东门路口", civil_code="34150201", latitude=31.7, longitude=116.5)
    cam = camera_for(DEV, item, names={"341502": "金安区"}, enabled=False, programme="xueliang")
    assert cam.id == f"gb-{CH1}" and cam.gb28181_id == CH1 and cam.enabled is False
    assert cam.area.path() == ("金安区", "34150201")
    assert (cam.lat, cam.lon) == (31.7, 116.5)
    assert cam.source.url == f"gb28181://{DEV}/{CH1}" and cam.source.password is None
    assert parse_source_url(cam.source.url) == (DEV, CH1)
    # The channel's own CivilCode is missing: its id's first 8 digits.
    assert camera_for(DEV, CatalogItem(CH2), names={}, enabled=True,
                      programme="other").area.path() == ("341502",)
    with pytest.raises(ValueError, match="20-digit"):
        parse_source_url("gb28181://1/2")


def test_sip_config_passwords() -> None:
    cfg = SipConfig.model_validate({"password": "shared", "devices": [
        {"id": DEV, "password": "own"}, {"id": "34020000001320000001"}]})  # fmt: skip
    assert cfg.password_for(DEV) == "own"
    assert cfg.password_for("34020000001320000001") == "shared"
    assert cfg.password_for("34020000001320000002") == "shared"
    closed = SipConfig.model_validate({"admit_unknown": False, "devices": [{"id": DEV}],
                                       "password": "p"})  # fmt: skip
    assert closed.password_for("34020000001320000002") is None
    assert "'own'" not in repr(cfg) and "'shared'" not in repr(cfg)
    with pytest.raises(ValueError, match="shared password"):
        SipConfig.model_validate({"enabled": True})


# -- SDP, RTP ----------------------------------------------------------------------------


def test_sdp_offer_and_answer() -> None:
    body = sdp.offer(session_id="x", channel_id=CH1, host="127.0.0.1", port=30000,
                     ssrc="0340200001")  # fmt: skip
    text = body.decode()
    assert "s=Play" in text and "a=rtpmap:96 PS/90000" in text and "y=0340200001" in text
    ans = sdp.parse_answer(b"v=0\r\nc=IN IP4 10.1.1.1\r\nm=video 15060 TCP/RTP/AVP 96\r\n"
                           b"y=0100000001\r\n")  # fmt: skip
    assert (ans.host, ans.port, ans.transport, ans.ssrc) == ("10.1.1.1", 15060, "tcp",
                                                             100000001)  # fmt: skip
    assert sdp.ssrc_for("3402000000", 12) == "0200000012"


def test_rtp_reordering_ssrc_filter_and_loss() -> None:
    r = Reorderer(expected_ssrc=7, window=4)
    pkts = [build_rtp(65534 + i, 0, 7, bytes([i])) for i in range(8)]  # wraps at 65535
    order = [0, 2, 1, 3, 5, 4, 6, 7]
    out = [p.payload[0] for i in order for p in r.push(pkts[i])]
    assert out == list(range(8))
    assert list(r.push(build_rtp(6, 0, 99, b"x"))) == [] and r.stats.wrong_ssrc == 1
    assert list(r.push(b"\x00" * 5)) == [] and r.stats.malformed == 1
    # A lost packet is given up on once the window fills.
    more = [build_rtp(65535 + i, 0, 7, bytes([i])) for i in (7, 8, 9, 10, 11)]
    got = [p.payload[0] for pkt in more for p in r.push(pkt)]
    assert r.stats.lost == 0 and got == [7, 8, 9, 10, 11]
    r2 = Reorderer(window=2)
    got2 = [p.payload for n in (10, 11, 12, 13, 15, 16, 17)
            for p in r2.push(build_rtp(n, 0, 1, bytes([n])))]  # fmt: skip
    assert r2.stats.lost == 1 and got2 == [bytes([n]) for n in (10, 11, 12, 13, 15, 16, 17)]
    # The start: a swapped first pair is kept (the first packet to deliver is the lowest).
    r3 = Reorderer()
    got3 = [p.seq for n in (101, 100, 102, 103, 104) for p in r3.push(build_rtp(n, 0, 1, b"x"))]
    assert got3 == [100, 101, 102, 103, 104] and r3.stats.late == 0


def test_rfc4571_framing_and_rtp_parse() -> None:
    a, b = build_rtp(1, 90, 5, b"abc", marker=True), build_rtp(2, 90, 5, b"de")
    frames, rest = split_4571(frame_4571(a) + frame_4571(b)[:3])
    assert frames == [a] and len(rest) == 3
    pkt = parse_rtp(a)
    assert (pkt.seq, pkt.timestamp, pkt.ssrc, pkt.marker, pkt.payload) == (1, 90, 5, True,
                                                                          b"abc")  # fmt: skip


def test_flood_guard() -> None:
    from gb28181.registry import FloodGuard

    guard = FloodGuard(limit=3, window_s=10)
    assert [guard.allow("a", 0) for _ in range(4)] == [True, True, True, False]
    assert guard.allow("b", 1)  # another device is not affected
    assert guard.allow("a", 10.5)  # a new window


def test_config_errors_name_file_and_field(tmp_path: object) -> None:
    from pathlib import Path

    from shaobing.config import ConfigError, parse_config

    def problems(data: dict[str, object]) -> str:
        with pytest.raises(ConfigError) as err:
            parse_config(data, "hub.yaml", Path("."))
        return str(err.value)

    assert "hub.yaml: sip: " in problems({"sip": {"enabled": True}})
    assert "shared password" in problems({"sip": {"enabled": True}})
    assert "hub.yaml: sip.id: " in problems({"sip": {"id": "123", "password": "p"}})
    assert "hub.yaml: sip.prot: unknown key" in problems({"sip": {"prot": 5060}})
    text = problems({"dispatch": [{"name": "up", "kind": "gb28181"}]})
    assert "kind gb28181 needs gb28181 settings" in text
    bad_pw = {"server_id": "3" * 20, "server_domain": "3" * 10, "host": "127.0.0.1",
              "local_id": "4" * 20, "password": "s3cret-up", "alarm_types": {"nope": 3}}
    text = problems({"dispatch": [{"name": "up", "kind": "gb28181", "gb28181": bad_pw}]})
    assert "unknown alert type" in text and "s3cret-up" not in text
    ok = parse_config({"sip": {"enabled": True, "password": "p", "port": 0}}, "hub.yaml",
                      Path("."))  # fmt: skip
    assert ok.config.sip.enabled and "password=" not in repr(ok.config.sip)  # repr=False


def test_rtp_sink_keeps_to_the_first_source_and_counts() -> None:
    from gb28181.media import PsPipe, RtpSink

    pipe = PsPipe(timeout_s=0.1)
    sink = RtpSink(pipe, 5)
    sink.datagram(build_rtp(1, 0, 5, b"ab"), ("10.0.0.1", 4000))
    sink.datagram(build_rtp(2, 0, 5, b"XX"), ("10.0.0.9", 4000))  # another sender
    sink.datagram(build_rtp(2, 0, 6, b"YY"), ("10.0.0.1", 4000))  # another SSRC
    for seq, payload in ((2, b"cd"), (3, b"ef"), (4, b"gh")):
        sink.datagram(build_rtp(seq, 0, 5, payload), ("10.0.0.1", 4000))
    buf = bytearray(10)
    n = pipe.readinto(memoryview(buf))
    assert bytes(buf[:n]) == b"abcdefgh"
    stats = sink.stats()
    assert (stats["wrong_source"], stats["wrong_ssrc"], stats["delivered"]) == (1, 1, 4)
    pipe.finish("done")
    assert pipe.readinto(memoryview(buf)) == 0
    from gb28181.media import MediaTimeout

    with pytest.raises(MediaTimeout, match="no media"):
        PsPipe(timeout_s=0.05).readinto(memoryview(buf))


def test_h265_ps_over_rtp_demuxes_and_decodes(tmp_path: object) -> None:
    """A device's H.265 (PSM stream type 0x24) through the same path as H.264: PS packs
    over RTP, reordered, into PyAV's PS demuxer, decoded."""
    import threading
    from fractions import Fraction

    import av
    import numpy as np

    from gb28181.media import PsPipe, RtpSink
    from gb28181.ps import mux_access_unit
    from gb28181.rtp import packetize

    enc = av.CodecContext.create("libx265", "w")
    enc.width, enc.height, enc.pix_fmt = 320, 240, "yuv420p"
    enc.time_base = Fraction(1, 25)
    enc.options = {"x265-params": "log-level=none:repeat-headers=1", "preset": "ultrafast"}
    units: list[tuple[bytes, int, bool]] = []
    for i in range(30):
        img = np.full((240, 320, 3), (i * 8) % 255, dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(img, format="bgr24").reformat(format="yuv420p")
        frame.pts = i
        units += [(bytes(p), i * 3600, bool(p.is_keyframe)) for p in enc.encode(frame)]
    units += [(bytes(p), (len(units) + 1) * 3600, bool(p.is_keyframe)) for p in enc.encode(None)]
    pipe = PsPipe(timeout_s=2)
    sink = RtpSink(pipe, 9)

    def feed() -> None:
        seq = 0
        for au, pts, key in units:
            pkts = packetize(mux_access_unit(au, pts, keyframe=key, codec="hevc"), seq=seq,
                             timestamp=pts, ssrc=9, mtu_payload=300)  # fmt: skip
            seq += len(pkts)
            if len(pkts) > 2:
                pkts[1], pkts[2] = pkts[2], pkts[1]
            for pkt in pkts:
                sink.datagram(pkt)
        pipe.finish("done")

    threading.Thread(target=feed, daemon=True).start()
    with av.open(pipe, mode="r", format="mpeg") as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "hevc"
        decoded = [f for p in container.demux(stream) for f in p.decode()]
    assert len(decoded) >= 28 and (decoded[0].width, decoded[0].height) == (320, 240)


def test_playback_offer_and_ssrc() -> None:
    body = sdp.offer(session_id="x", channel_id="34150201001310000001", host="10.0.0.1",
                     port=30000, ssrc=sdp.ssrc_for("3402000000", 7, live=False),
                     playback=(1_800_000_000, 1_800_000_060)).decode()  # fmt: skip
    lines = body.split("\r\n")
    assert "s=Playback" in lines and "u=34150201001310000001:0" in lines
    assert "t=1800000000 1800000060" in lines and "y=1200000007" in lines
    live = sdp.offer(session_id="x", channel_id="34150201001310000001", host="10.0.0.1",
                     port=30000, ssrc="0200000001").decode()  # fmt: skip
    assert "s=Play" in live.split("\r\n") and "t=0 0" in live and "u=" not in live


def test_record_info_query_and_answer_pages() -> None:
    query = manscdp.parse_body(manscdp.record_info_query(5, "34150201001310000001",
                                                         "2026-12-07T08:00:00",
                                                         "2026-12-07T10:00:00"))  # fmt: skip
    assert (query.root, query.cmd, query.sn) == ("Query", "RecordInfo", 5)
    assert query.text("StartTime") == "2026-12-07T08:00:00" and query.text("Type") == "all"
    page = ('<?xml version="1.0" encoding="GB2312"?><Response><CmdType>RecordInfo</CmdType>'
            "<SN>5</SN><DeviceID>34150201001310000001</DeviceID><SumNum>3</SumNum>"
            '<RecordList Num="1"><Item><DeviceID>34150201001310000001</DeviceID>'
            "<Name>东门</Name><StartTime>2026-12-07T08:00:00</StartTime>"
            "<EndTime>2026-12-07T08:10:00</EndTime><Type>time</Type><FileSize>12</FileSize>"
            "</Item></RecordList></Response>").encode("gb18030")  # fmt: skip
    total, items = manscdp.record_items(manscdp.parse_body(page))
    assert total == 3 and items[0].name == "东门" and items[0].file_size == 12
    with pytest.raises(manscdp.ManscdpError, match="SumNum"):
        manscdp.record_items(manscdp.parse_body(page.replace(b"<SumNum>3", b"<SumNum>x")))


def test_device_local_times() -> None:
    from gb28181.playback import epoch_of, local_time

    assert local_time(0, "Asia/Shanghai") == "1970-01-01T08:00:00"
    assert epoch_of("1970-01-01T08:00:00", "Asia/Shanghai") == 0
    assert epoch_of("1970-01-01 08:00:10", "Asia/Shanghai") == 10
    assert epoch_of("not a time", "Asia/Shanghai") is None and epoch_of(None, "UTC") is None


def test_ptz_commands_and_checksums() -> None:
    from gb28181 import ptz

    assert ptz.stop() == "A50F0100000000B5"  # the stop every GB/T 28181 device knows
    assert ptz.preset(ptz.CALL_PRESET, 1) == "A50F018200010038"
    assert ptz.preset(ptz.SET_PRESET, 3) == "A50F018100030039"
    assert ptz.move(1.0, 0, 0) == "A50F0101FF0000B5"  # right, full pan speed
    assert ptz.move(0, -0.5, 0)[6:12] == "040080"  # down, tilt speed 128 in byte 6
    assert ptz.move(0, 0, -1.0)[6:8] == "20" and ptz.move(0, 0, -1.0)[12:14] == "F0"
    for hexcmd in (ptz.move(0.3, 0.7, 0.2), ptz.preset(ptz.DELETE_PRESET, 255)):
        raw = bytes.fromhex(hexcmd)
        assert len(raw) == 8 and raw[0] == 0xA5 and sum(raw[:7]) % 256 == raw[7]
    with pytest.raises(ValueError, match="1-255"):
        ptz.preset(ptz.CALL_PRESET, 0)
    with pytest.raises(ValueError, match="pan"):
        ptz.move(1.5, 0, 0)
    body = manscdp.parse_body(manscdp.ptz_control(9, "34150201001310000001", ptz.stop()))
    assert (body.root, body.cmd, body.text("PTZCmd")) == ("Control", "DeviceControl",
                                                           "A50F0100000000B5")  # fmt: skip


def test_broadcast_notify_and_gb_speaker_config() -> None:
    from pydantic import ValidationError

    from linkage.config import SpeakerConfig

    body = manscdp.parse_xml(manscdp.broadcast_notify(4, "34020000002000000001",
                                                      "34150201001370000001"))  # fmt: skip
    assert body.tag == "Notify" and body.findtext("CmdType") == "Broadcast"
    assert body.findtext("SourceID") == "34020000002000000001"
    assert body.findtext("TargetID") == "34150201001370000001"
    ok = SpeakerConfig.model_validate({"id": "s", "kind": "gb28181",
                                       "uri": "gb28181://34020000001180000001/"
                                              "34150201001370000001"})  # fmt: skip
    assert ok.kind == "gb28181"
    with pytest.raises(ValidationError, match="gb28181://<20-digit device id>"):
        SpeakerConfig.model_validate({"id": "s", "kind": "gb28181", "uri": "sip:x@y"})


def test_tcp_active_offer() -> None:
    body = sdp.offer(session_id="x", channel_id="34150201001310000001", host="10.0.0.1",
                     port=30000, ssrc="0200000001", transport="tcp_active").decode()  # fmt: skip
    lines = body.split("\r\n")
    assert "m=video 30000 TCP/RTP/AVP 96 97 98" in lines
    assert "a=setup:active" in lines and "a=connection:new" in lines


def test_forward_annex_b_and_parameter_sets() -> None:
    from gb28181.forward import annex_b, parameter_sets

    sps, pps, idr = b"\x67\x42\x00\x1f", b"\x68\xce\x3c\x80", b"\x65\x88\x84"
    avcc = len(idr).to_bytes(4, "big") + idr + (2).to_bytes(4, "big") + b"\x41\x9a"
    assert annex_b(avcc) == b"\x00\x00\x00\x01" + idr + b"\x00\x00\x00\x01\x41\x9a"
    already = b"\x00\x00\x00\x01" + idr
    assert annex_b(already) == already
    assert annex_b(b"\x00\x00\x00\x09abc") == b"\x00\x00\x00\x09abc"  # not length-prefixed
    avcc_extradata = (b"\x01\x42\x00\x1f\xff\xe1" + len(sps).to_bytes(2, "big") + sps
                      + b"\x01" + len(pps).to_bytes(2, "big") + pps)  # fmt: skip
    assert parameter_sets(avcc_extradata) == b"\x00\x00\x00\x01" + sps + b"\x00\x00\x00\x01" + pps
    assert parameter_sets(None) == b"" and parameter_sets(already) == already
