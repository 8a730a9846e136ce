"""GB/T 28181 upward: Shaobing registers to a superior platform as a lower platform and
sends each new alert as MESSAGE Notify Alarm (§9.4, AlarmMethod 5: video alarm).

Registration (MD5 digest) happens on the first message and is refreshed before it
expires; a heartbeat thread sends Keepalive every ``keepalive_s`` once registered. A
failed send (no answer, 4xx/5xx, a registration refused) is a retryable result: the
outbox tries again with its backoff. Only ``alert.created`` goes up — a GB alarm is an
event; later status changes have no GB counterpart and are recorded as delivered.

A receiver thread answers the superior's requests: its Catalog query gets Shaobing's
alarm channels (``channel_ids``, ``default_channel_id``); its INVITE for one of them
(``s=Play``, RTP over UDP) is answered with the camera's live video re-packetised as PS
(gb28181/forward.py, no re-encoding) when this process reads that camera, else 404;
BYE ends it. Anything else is answered 501.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from alerts.config import DispatchTarget, Gb28181UpSettings
from alerts.connectors.base import Message, Result
from alerts.connectors.wvp import GB_ALARM_TYPES
from gb28181 import forward, manscdp, sdp
from gb28181 import sip as s

log = logging.getLogger(__name__)

#: AlarmMethod 5: 视频报警 (video analytics alarm).
VIDEO_ALARM = 5


def alarm_fields(message: Message, cfg: Gb28181UpSettings) -> tuple[str, int, int, str, str]:
    """(channel id, AlarmType, AlarmPriority, AlarmTime, description) of an alert, or
    ValueError when the camera has no channel id to report it under."""
    alert = message.data()["alert"]
    camera = alert.get("camera") or {}
    channel = (cfg.channel_ids.get(camera.get("id", "")) or camera.get("gb28181_id")
               or cfg.default_channel_id)  # fmt: skip
    if not channel:
        raise ValueError(f"no GB/T 28181 channel id for camera {camera.get('id')} (set "
                         "gb28181.channel_ids or default_channel_id)")  # fmt: skip
    types = {**GB_ALARM_TYPES, **cfg.alarm_types}
    alarm_type = types.get(alert.get("type", ""), cfg.default_alarm_type)
    priority = cfg.priorities.get(alert.get("severity", ""), 4)
    at = alert.get("started_at") or alert.get("created_at") or time.time()
    when = datetime.fromtimestamp(float(at), ZoneInfo(cfg.timezone)).strftime("%Y-%m-%dT%H:%M:%S")
    explanation = (alert.get("trace") or {}).get("explanation") or ""
    description = f"{camera.get('name') or camera.get('id')}: {alert.get('type')} {explanation}"
    return channel, alarm_type, priority, when, description.strip()[:256]


class GbAlarmConnector:
    """One UDP socket; one transaction at a time (the lock): alarms are rare."""

    def __init__(self, target: DispatchTarget) -> None:
        assert target.gb28181 is not None
        self.cfg = target.gb28181
        self.timeout_s = target.timeout_s
        self.name = target.name
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.cfg.local_host, self.cfg.local_port))
        self.local_port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.registered_until = 0.0
        self.reg_call_id = s.new_call_id()
        self.reg_tag = s.new_tag()
        self.cseq = 0
        self.sn = 0
        self._stop = threading.Event()
        self._heart: threading.Thread | None = None
        self.last_error: str | None = None
        # Responses by (Call-ID, CSeq), handed from the receiver thread to the waiting sender.
        self._waiting: dict[tuple[str, tuple[int, str]], list[s.SipMessage]] = {}
        self._answered = threading.Condition()
        self.sock.settimeout(0.2)
        self._forwards: dict[str, Any] = {}  # by Call-ID: (forwarder, started)
        self._rx = threading.Thread(target=self._receive, daemon=True,
                                    name=f"gb28181-{target.name}-rx")  # fmt: skip
        self._rx.start()

    # -- SIP plumbing ---------------------------------------------------------------

    def _request(self, method: str, *, call_id: str, from_tag: str, body: bytes = b"",
                 headers: list[tuple[str, str]] | None = None) -> s.SipMessage:  # fmt: skip
        self.cseq += 1
        cfg = self.cfg
        me = f"sip:{cfg.local_id}@{cfg.local_id[:10]}"
        to = me if method == "REGISTER" else f"sip:{cfg.server_id}@{cfg.server_domain}"
        return s.request(method, f"sip:{cfg.server_id}@{cfg.server_domain}",
                         via_host=cfg.local_host, via_port=self.local_port, transport="udp",
                         from_uri=me, from_tag=from_tag, to_uri=to, call_id=call_id,
                         cseq=self.cseq, contact=f"sip:{cfg.local_id}@{cfg.local_host}:"
                         f"{self.local_port}", body=body, headers=headers)  # fmt: skip

    def _transact(self, msg: s.SipMessage) -> s.SipMessage:
        """Send and wait for the final response (retransmitting on UDP's T1 timer)."""
        key = (msg.call_id, msg.cseq)
        data = msg.encode()
        deadline = time.monotonic() + self.timeout_s
        interval = 0.5
        with self._answered:
            self._waiting[key] = []
        try:
            while True:
                now = time.monotonic()
                if now >= deadline:
                    raise TimeoutError(f"no answer to {msg.method} within {self.timeout_s:g} s")
                self.sock.sendto(data, (self.cfg.host, self.cfg.port))
                until = min(now + interval, deadline)
                interval = min(interval * 2, 4.0)
                with self._answered:
                    while not self._waiting[key] and time.monotonic() < until:
                        self._answered.wait(until - time.monotonic())
                    if self._waiting[key]:
                        return self._waiting[key][0]
        finally:
            with self._answered:
                self._waiting.pop(key, None)

    def _receive(self) -> None:
        """The receiver thread: final responses to the waiting sender, requests answered."""
        while not self._stop.is_set():
            try:
                raw, addr = self.sock.recvfrom(65535)
            except (TimeoutError, ConnectionRefusedError):
                continue  # ICMP port unreachable of an earlier send: the sender retries
            except OSError:
                return  # closed
            try:
                msg = s.parse_message(raw)
                if msg.is_request:
                    self._answer_request(msg, (addr[0], addr[1]))
                elif (msg.status or 0) >= 200:
                    with self._answered:
                        slot = self._waiting.get((msg.call_id, msg.cseq))
                        if slot is not None:
                            slot.append(msg)
                            self._answered.notify_all()
            except Exception as exc:  # noqa: BLE001 - the receiver never dies
                log.info("gb28181 %s: message from %s not handled: %s", self.name, addr[0], exc)

    def _answer_request(self, req: s.SipMessage, addr: tuple[str, int]) -> None:
        if req.method == "INVITE":
            self._on_invite(req, addr)
            return
        if req.method == "ACK":
            fwd = self._forwards.get(req.call_id)
            if fwd is not None and not fwd.thread.is_alive() and not fwd.stop_event.is_set():
                fwd.start()  # the superior confirmed: the video goes out
            return
        if req.method == "BYE":
            fwd = self._forwards.pop(req.call_id, None)
            found = fwd is not None
            self.sock.sendto(s.response(req, 200 if found else 481, "OK" if found else
                                        "Call/Transaction Does Not Exist").encode(), addr)
            if fwd is not None:
                fwd.stop_event.set()
                if not fwd.thread.is_alive():
                    fwd.sock.close()  # never started (no ACK came)
                log.info("gb28181 %s: the superior ended the video of a shared channel",
                         self.name)  # fmt: skip
            return
        if req.method == "MESSAGE":
            try:
                body = manscdp.parse_body(req.body)
            except manscdp.ManscdpError:
                body = None
            if body is not None and (body.root, body.cmd) == ("Query", "Catalog"):
                self.sock.sendto(s.response(req, 200, "OK", to_tag=s.new_tag()).encode(), addr)
                threading.Thread(target=self._send_catalog, args=(body.sn,), daemon=True,
                                 name=f"gb28181-{self.name}-catalog").start()  # fmt: skip
                return
        status, reason = (200, "OK") if req.method == "OPTIONS" else (501, "Not Implemented")
        self.sock.sendto(s.response(req, status, reason, to_tag=s.new_tag()).encode(), addr)

    def _on_invite(self, req: s.SipMessage, addr: tuple[str, int]) -> None:
        """The superior asks for a shared channel's live video."""
        channel = s.user_of(req.uri or "") or ""
        cameras = {gb: cam for cam, gb in self.cfg.channel_ids.items()}
        camera = cameras.get(channel)
        feed = forward.FEEDS(camera) if camera is not None and forward.FEEDS else None
        tag = s.new_tag()
        if req.call_id in self._forwards:  # a retransmitted INVITE: answered already
            return
        if feed is None:
            why = "not shared" if camera is None else "not read in this process"
            self.sock.sendto(s.response(req, 404, f"Not Found: channel {why}",
                                        to_tag=tag).encode(), addr)  # fmt: skip
            return
        offer = sdp.parse_answer(req.body)
        if offer.port is None or not offer.host or offer.transport != "udp":
            self.sock.sendto(s.response(req, 488, "Not Acceptable Here: RTP over UDP only",
                                        to_tag=tag).encode(), addr)  # fmt: skip
            return
        ssrc = offer.ssrc if offer.ssrc is not None else int(sdp.ssrc_for(
            self.cfg.local_id[:10], self.cseq))  # fmt: skip
        fwd = forward.PsForwarder(feed, offer.host, offer.port, ssrc,
                                  local_host=self.cfg.local_host, name=channel)  # fmt: skip
        self._forwards[req.call_id] = fwd
        host = self.cfg.local_host
        body = "\r\n".join([
            "v=0", f"o={channel} 0 0 IN IP4 {host}", "s=Play", f"c=IN IP4 {host}", "t=0 0",
            f"m=video {fwd.local_port} RTP/AVP 96", "a=sendonly", "a=rtpmap:96 PS/90000",
            f"y={ssrc:010d}", "",
        ]).encode()  # fmt: skip
        answer = s.response(req, 200, "OK", to_tag=tag, body=body, content_type="APPLICATION/SDP",
                            headers=[("Contact", f"<sip:{self.cfg.local_id}@{host}:"
                                                 f"{self.local_port}>")])  # fmt: skip
        self.sock.sendto(answer.encode(), addr)
        log.info("gb28181 %s: forwarding channel %s (camera %s) to %s:%d", self.name, channel,
                 camera, offer.host, offer.port)  # fmt: skip

    def shared_channels(self) -> list[tuple[str, str]]:
        """(channel id, name) of what Shaobing shares upward: the alarm channels of its
        cameras (``channel_ids``) and ``default_channel_id``."""
        out = {gb: f"哨兵 {camera}" for camera, gb in self.cfg.channel_ids.items()}
        if self.cfg.default_channel_id:
            out.setdefault(self.cfg.default_channel_id, "哨兵 报警通道")
        return sorted(out.items())

    def _send_catalog(self, sn: int, page: int = 20) -> None:
        """The Catalog answer, in pages of ``page`` items (SumNum: all of them)."""
        channels = self.shared_channels()
        try:
            for start in range(0, max(1, len(channels)), page):
                items = channels[start : start + page]
                body = manscdp.catalog_response(sn, self.cfg.local_id, len(channels), [
                    {"DeviceID": gb, "Name": name, "Manufacturer": "Shaobing",
                     "Model": "video analytics", "ParentID": self.cfg.local_id,
                     "CivilCode": gb[:6], "Parental": "0", "Status": "ON"}
                    for gb, name in items])  # fmt: skip
                with self.lock:
                    answer = self._message(body)
                if answer.status != 200:
                    raise ConnectionError(f"catalog page answered {answer.status}")
        except Exception as exc:  # noqa: BLE001 - logged; the superior may ask again
            log.warning("gb28181 %s: catalog answer failed: %s", self.name, exc)

    def _authorised(self, msg: s.SipMessage) -> s.SipMessage:
        """Send; answer a 401/407 challenge once with the digest."""
        answer = self._transact(msg)
        if answer.status not in (401, 407):
            return answer
        header = "WWW-Authenticate" if answer.status == 401 else "Proxy-Authenticate"
        challenge = answer.header(header)
        if not challenge:
            return answer
        auth = s.authorization(challenge, username=self.cfg.username or self.cfg.local_id,
                               password=self.cfg.password, method=msg.method or "",
                               uri=msg.uri or "")  # fmt: skip
        retry = self._request(msg.method or "", call_id=msg.call_id,
                              from_tag=s.tag_of(msg.header("From") or "") or s.new_tag(),
                              body=msg.body, headers=[(
                                  "Authorization" if answer.status == 401
                                  else "Proxy-Authorization", auth),
                                  *[(k, v) for k, v in msg.headers if k == "Expires"]])  # fmt: skip
        return self._transact(retry)

    def _register(self) -> None:
        msg = self._request("REGISTER", call_id=self.reg_call_id, from_tag=self.reg_tag,
                            headers=[("Expires", str(self.cfg.expires_s))])  # fmt: skip
        answer = self._authorised(msg)
        if answer.status != 200:
            hint = ": check the password and ids set on the superior" if answer.status in (
                401, 403) else ""  # fmt: skip
            raise ConnectionError(f"registration refused ({answer.status} {answer.reason}){hint}")
        expires = s.expires_of(answer, self.cfg.expires_s) or self.cfg.expires_s
        self.registered_until = time.monotonic() + expires * 0.8
        log.info("gb28181 %s: registered to %s@%s:%d", self.name, self.cfg.server_id,
                 self.cfg.host, self.cfg.port)  # fmt: skip
        if self._heart is None:
            self._heart = threading.Thread(target=self._heartbeat, daemon=True,
                                           name=f"gb28181-{self.name}")  # fmt: skip
            self._heart.start()

    def _ensure_registered(self) -> None:
        if time.monotonic() >= self.registered_until:
            self._register()

    def _message(self, body: bytes) -> s.SipMessage:
        msg = self._request("MESSAGE", call_id=s.new_call_id(), from_tag=s.new_tag(), body=body)
        return self._authorised(msg)

    def _heartbeat(self) -> None:
        """Keepalive every keepalive_s; a failure makes the next use register again."""
        while not self._stop.wait(self.cfg.keepalive_s):
            try:
                with self.lock:
                    if time.monotonic() >= self.registered_until:
                        self._register()
                    self.sn += 1
                    answer = self._message(manscdp.keepalive(self.sn, self.cfg.local_id))
                    if answer.status != 200:
                        raise ConnectionError(f"keepalive answered {answer.status}")
            except Exception as exc:  # noqa: BLE001 - the heartbeat never dies
                self.registered_until = 0.0
                self.last_error = f"keepalive: {exc}"
                log.warning("gb28181 %s: keepalive failed: %s", self.name, exc)

    # -- Connector ------------------------------------------------------------------

    def send(self, message: Message) -> Result:
        if message.event != "alert.created":
            return Result(ok=True)
        try:
            channel, alarm_type, priority, when, description = alarm_fields(message, self.cfg)
        except ValueError as exc:
            return Result(ok=False, retryable=False, error=str(exc))
        try:
            with self.lock:
                self._ensure_registered()
                self.sn += 1
                body = manscdp.alarm_notify(
                    self.sn, channel, priority=priority, method=VIDEO_ALARM, time_iso=when,
                    description=description, alarm_type=alarm_type,
                )  # fmt: skip
                answer = self._message(body)
                if answer.status in (401, 403, 404):  # it forgot us (restarted): again
                    self._register()
                    answer = self._message(body)
        except (OSError, TimeoutError, s.SipParseError) as exc:
            self.registered_until = 0.0
            return Result(ok=False, error=f"GB/T 28181: {type(exc).__name__}: {exc}")
        if answer.status != 200:
            error = f"GB/T 28181: alarm answered {answer.status} {answer.reason}"
            return Result(ok=False, status=answer.status, error=error)
        return Result(ok=True, status=200)

    def close(self) -> None:
        for fwd in list(self._forwards.values()):
            fwd.stop_event.set()
            if not fwd.thread.is_alive():
                fwd.sock.close()
        self._forwards.clear()
        self._close_rest()

    def _close_rest(self) -> None:
        self._stop.set()
        if self._heart is not None:
            self._heart.join(2)
        self._rx.join(2)
        self.sock.close()
