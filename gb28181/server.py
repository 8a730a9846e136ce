"""The SIP server: Shaobing as a GB/T 28181 platform (UDP and TCP).

Why asyncio, in one thread of its own: SIP here is many small, independent
messages — a county network coming back sends a thousand REGISTERs at once, then a
keepalive per device per minute — and each needs a few microseconds of work and no
blocking call. One event loop serves every device and every RTP port without a thread
per device or per stream (threads would cost 8 MB of stack each and GIL hand-offs);
the loop runs in its own thread so the rest of the hub (threaded readers, the API)
stays as it is, and talks to it through :meth:`SipServer.call` (thread-safe). The
camera registry is written by a separate sync thread so a slow database never stalls
the loop.

The state (devices, channels) is :class:`gb28181.registry.Registry`, pure; this
module does the network and the timing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import random
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

from gb28181 import manscdp, metrics, sdp
from gb28181 import sip as sipmsg
from gb28181.config import SipConfig
from gb28181.media import (
    PortPool,
    PsPipe,
    RtpSink,
    open_tcp_active,
    open_tcp_passive,
    open_udp,
)
from gb28181.registry import Changes, FloodGuard, Registry
from gb28181.rtp import build_rtp
from gb28181.sip import SipMessage, SipParseError

log = logging.getLogger(__name__)
T = TypeVar("T")

#: RFC 3261 timer T1: UDP requests are retransmitted after T1, 2·T1, 4·T1 ...
T1 = 0.5


class InviteFailed(RuntimeError):
    """The device refused the INVITE or never answered (``state`` says which; the message
    names it too, so the camera's last error shows it)."""

    def __init__(self, state: str, message: str) -> None:
        super().__init__(message if state in message else f"{state}: {message}")
        self.state = state


class ChangeSink(Protocol):
    """Where channel changes go (the camera registry); called on the sync thread."""

    def apply(self, changes: Changes) -> None: ...


@dataclass
class _Peer:
    """How to reach a device: its transport and address (or TCP connection)."""

    transport: str
    addr: tuple[str, int]
    writer: asyncio.StreamWriter | None = None


@dataclass
class MediaSession:
    """One INVITE dialog and its RTP port."""

    device_id: str
    channel_id: str
    call_id: str
    from_tag: str
    to_tag: str | None
    ssrc: str
    port: int
    pipe: PsPipe
    sink: RtpSink
    cseq: int = 1
    closers: list[Any] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    closed: bool = False


@dataclass
class _RecordQuery:
    """A RecordInfo query: its pages collected until SumNum items came."""

    channel_id: str
    done: asyncio.Future[None]
    total: int | None = None
    items: list[manscdp.RecordItem] = field(default_factory=list)


@dataclass
class _AudioOffer:
    host: str | None
    port: int | None
    pts: list[int]
    ssrc: int | None


def _audio_offer(body: bytes) -> _AudioOffer:
    """The audio a device's broadcast INVITE offers to receive (c=, m=audio, y=)."""
    host = port = ssrc = None
    pts: list[int] = []
    for line in body.decode("utf-8", errors="replace").splitlines():
        line = line.strip()
        if line.startswith("c="):
            host = line.split()[-1]
        elif line.startswith("m=audio"):
            parts = line.split()
            if len(parts) >= 3 and parts[1].isdigit():
                port = int(parts[1])
                pts = [int(p) for p in parts[3:] if p.isdigit()]
        elif line.startswith("y=") and line[2:].strip().isdigit():
            ssrc = int(line[2:].strip())
    return _AudioOffer(host, port, pts, ssrc)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: SipServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not data.strip(b"\r\n\x00 "):
            return  # keep-alive CRLF / NAT ping
        assert self.transport is not None
        self.server.received(data, _Peer("udp", (addr[0], addr[1])))


class SipServer:
    """The GB/T 28181 platform component: ``start()``, ``stop()``, ``health()``."""

    def __init__(self, cfg: SipConfig, sink: ChangeSink | None = None,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.cfg = cfg
        self.sink = sink
        self.clock = clock
        self.registry = Registry(
            keepalive_interval_s=cfg.keepalive_interval_s, keepalive_misses=cfg.keepalive_misses,
            catalog_timeout_s=cfg.catalog_timeout_s, max_channels=cfg.max_channels,
        )  # fmt: skip
        self.nonces = sipmsg.NonceSource()
        self.flood = FloodGuard()
        self.ports = PortPool(cfg.rtp_port_min, cfg.rtp_port_max)
        self.loop = asyncio.new_event_loop()
        self.udp: asyncio.DatagramTransport | None = None
        self.tcp: asyncio.Server | None = None
        self.udp_port = 0
        self.tcp_port = 0
        self._peers: dict[str, _Peer] = {}
        self._pending: dict[tuple[str, int, str], asyncio.Future[SipMessage]] = {}
        self._sessions: dict[str, MediaSession] = {}  # by Call-ID
        self._records: dict[int, _RecordQuery] = {}  # RecordInfo queries by SN
        self._broadcasts: dict[str, asyncio.Future[tuple[SipMessage, _Peer]]] = {}  # by id
        self._sn = int(time.time()) % 100_000
        self._seq = 0
        self._changes: queue.Queue[Changes | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="sip", daemon=True)
        self._sync = threading.Thread(target=self._sync_loop, name="sip-sync", daemon=True)
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._ticker_task: asyncio.Task[None]
        self.counters: dict[str, int] = {}
        self.last_error: str | None = None

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self._sync.start()
        self._thread.start()
        self._ready.wait(10)
        if self._start_error is not None:
            raise RuntimeError(
                f"SIP server cannot start on {self.cfg.host}:{self.cfg.port}: "
                f"{type(self._start_error).__name__}: {self._start_error}"
            ) from None
        log.info("SIP server %s@%s on %s udp:%s tcp:%s", self.cfg.id, self.cfg.domain,
                 self.cfg.host, self.udp_port or "-", self.tcp_port or "-")  # fmt: skip

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            self.call(self._shutdown(), timeout=5)
        except Exception:  # noqa: BLE001 - stopping anyway
            log.exception("SIP server: shutdown step failed")
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self._changes.put(None)
        self._sync.join(5)

    def threads(self) -> list[threading.Thread]:
        return [self._thread, self._sync]

    def health(self) -> dict[str, Any]:
        devices = list(self.registry.devices.values())
        return {
            "status": "ok" if all(t.is_alive() for t in self.threads()) else "degraded",
            "id": self.cfg.id,
            "domain": self.cfg.domain,
            "udp_port": self.udp_port,
            "tcp_port": self.tcp_port,
            "devices_online": sum(d.state == "online" for d in devices),
            "devices_offline": sum(d.state == "offline" for d in devices),
            "streams": len(self._sessions),
            "stream_stats": [{"channel": m.channel_id, "port": m.port, **m.sink.stats()}
                             for m in list(self._sessions.values())],  # fmt: skip
            "rtp_ports_in_use": len(self.ports.used),
            "last_error": self.last_error,
        }

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._bind())
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._start_error = exc
            self._ready.set()
            return
        self._ready.set()
        self._ticker_task = self.loop.create_task(self._ticker())
        try:
            self.loop.run_forever()
        finally:
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.close()

    async def _bind(self) -> None:
        # port 0: the UDP port the system picks may be taken on TCP; pick again (a few times)
        for attempt in range(5):
            try:
                return await self._bind_once()
            except OSError:
                if self.cfg.port != 0 or attempt == 4:
                    raise
                if self.udp is not None:
                    self.udp.close()
                    self.udp, self.udp_port = None, 0

    async def _bind_once(self) -> None:
        cfg = self.cfg
        if "udp" in cfg.transports:
            transport, _ = await self.loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(cfg.host, cfg.port)
            )
            self.udp = cast(asyncio.DatagramTransport, transport)
            sock = transport.get_extra_info("socket")
            if sock is not None:  # a network coming back sends thousands of REGISTERs at once
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            self.udp_port = transport.get_extra_info("sockname")[1]
        if "tcp" in cfg.transports:
            port = self.udp_port or cfg.port  # the same number for both when port is 0
            self.tcp = await asyncio.start_server(self._tcp_client, cfg.host, port)
            self.tcp_port = self.tcp.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        self._ticker_task.cancel()
        for session in list(self._sessions.values()):
            await self._bye(session)
        if self.udp is not None:
            self.udp.close()
        if self.tcp is not None:
            self.tcp.close()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the server's loop from another thread; its result."""
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                self._emit(self.registry.tick(self.clock()))
            except Exception:  # noqa: BLE001 - the ticker must outlive any error
                log.exception("SIP registry tick failed")

    def _emit(self, changes: Changes | None) -> None:
        if changes:
            for dev in changes.went_offline:
                log.warning("GB device %s offline (%s)", dev,
                            self.registry.devices[dev].last_error if dev in self.registry.devices
                            else "removed")  # fmt: skip
            self._changes.put(changes)

    def _sync_loop(self) -> None:
        """Apply channel changes to the camera registry; never dies on an error."""
        while True:
            changes = self._changes.get()
            if changes is None:
                return
            if self.sink is None:
                continue
            try:
                self.sink.apply(changes)
            except Exception as exc:  # noqa: BLE001 - logged, the next change is tried
                self.last_error = f"camera registry update failed: {type(exc).__name__}: {exc}"
                log.exception("GB/T 28181: camera registry update failed")

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    # -- transport ------------------------------------------------------------------

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        addr = writer.get_extra_info("peername")
        peer = _Peer("tcp", (addr[0], addr[1]), writer)
        buffer = b""
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                try:
                    messages, buffer = sipmsg.split_stream(buffer + data)
                except SipParseError as exc:
                    self._refuse("malformed", f"TCP from {addr[0]}: {exc}")
                    return  # a broken stream cannot be resynchronised
                for raw in messages:
                    self.received(raw, peer)
        except (ConnectionError, OSError):
            return
        finally:
            writer.close()

    def _send(self, peer: _Peer, msg: SipMessage) -> None:
        data = msg.encode()
        if peer.transport == "tcp":
            if peer.writer is None or peer.writer.is_closing():
                raise ConnectionError("the device's TCP connection is closed")
            peer.writer.write(data)
        else:
            assert self.udp is not None
            self.udp.sendto(data, peer.addr)

    def _refuse(self, reason: str, detail: str) -> None:
        metrics.SIP_REFUSED.labels(reason).inc()
        self._count(f"refused_{reason}")
        log.info("SIP refused (%s): %s", reason, detail)

    def received(self, data: bytes, peer: _Peer) -> None:
        """One message from the network (UDP datagram or TCP frame)."""
        try:
            msg = sipmsg.parse_message(data)
        except SipParseError as exc:
            self._refuse("malformed", f"from {peer.addr[0]}:{peer.addr[1]}: {exc}")
            return
        try:
            if msg.is_request:
                self._request(msg, peer)
            else:
                self._response(msg)
        except Exception as exc:  # noqa: BLE001 - one bad message never stops the server
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("SIP: handling a message from %s failed", peer.addr[0])

    def _response(self, msg: SipMessage) -> None:
        num, method = msg.cseq
        metrics.SIP_MESSAGES.labels(f"{method} {msg.status}", "response").inc()
        fut = self._pending.get((msg.call_id, num, method))
        if fut is None or fut.done():
            return
        if msg.status is not None and msg.status < 200:
            return  # provisional: keep waiting
        fut.set_result(msg)

    def _reply(self, peer: _Peer, req: SipMessage, status: int, reason: str,
               **kw: Any) -> None:  # fmt: skip
        self._send(peer, sipmsg.response(req, status, reason, to_tag=sipmsg.new_tag(), **kw))

    def _request(self, msg: SipMessage, peer: _Peer) -> None:
        method = msg.method or ""
        handler = {
            "REGISTER": self._on_register, "MESSAGE": self._on_message, "BYE": self._on_bye,
            "ACK": lambda m, p: None, "OPTIONS": self._on_options, "INVITE": self._on_invite,
            "NOTIFY": self._on_message,
        }.get(method)  # fmt: skip
        if handler is None:
            metrics.SIP_MESSAGES.labels(method, "unsupported").inc()
            self._reply(peer, msg, 405, "Method Not Allowed")
            return
        handler(msg, peer)

    def _on_options(self, msg: SipMessage, peer: _Peer) -> None:
        self._reply(peer, msg, 200, "OK")

    def _on_invite(self, msg: SipMessage, peer: _Peer) -> None:
        """A device's INVITE: only the audio call of a voice broadcast we asked for."""
        caller = sipmsg.user_of(msg.header("From") or "") or ""
        fut = self._broadcasts.get(caller)
        if fut is None or fut.done():
            self._refuse("unexpected_invite", f"INVITE from {caller} at {peer.addr[0]}")
            self._reply(peer, msg, 488, "Not Acceptable Here: no broadcast pending")
            return
        fut.set_result((msg, peer))

    # -- REGISTER -------------------------------------------------------------------

    def _on_register(self, msg: SipMessage, peer: _Peer) -> None:
        device_id = sipmsg.user_of(msg.header("From") or "") or sipmsg.user_of(
            msg.header("To") or ""
        )
        if not device_id or not device_id.isdigit() or len(device_id) != 20:
            self._refuse("bad_id", f"REGISTER from {peer.addr[0]} with id {device_id!r}")
            self._reply(peer, msg, 400, "Bad Request: device id must be 20 digits")
            return
        if not self.flood.allow(device_id, self.clock()):
            self._refuse("flood", f"REGISTER of {device_id} from {peer.addr[0]}: too many")
            return  # dropped unanswered: answering a flood only feeds it
        password = self.cfg.password_for(device_id)
        if password is None:
            self._refuse("unknown_device", f"REGISTER of {device_id} from {peer.addr[0]}")
            metrics.SIP_MESSAGES.labels("REGISTER", "unknown_device").inc()
            self._reply(peer, msg, 403, "Forbidden")
            return
        now = self.clock()
        auth = msg.header("Authorization")
        reason = "stale" if auth is None else sipmsg.check_authorization(
            auth, method="REGISTER", password=password, realm=self.cfg.domain,
            nonces=self.nonces, now=now,
        )  # fmt: skip
        if reason == "stale":
            metrics.SIP_MESSAGES.labels("REGISTER", "challenged").inc()
            self._reply(peer, msg, 401, "Unauthorized", headers=[(
                "WWW-Authenticate", sipmsg.challenge(self.cfg.domain, self.nonces.make(now)))])
            return
        if reason is not None:
            self._refuse("auth", f"REGISTER of {device_id} from {peer.addr[0]}: {reason}")
            metrics.SIP_MESSAGES.labels("REGISTER", "forbidden").inc()
            self._reply(peer, msg, 403, "Forbidden")
            return
        expires = min(sipmsg.expires_of(msg, self.cfg.register_expires_s),
                      self.cfg.register_expires_s)  # fmt: skip
        headers = [("Date", sipmsg.sip_date(now)), ("Expires", str(expires))]
        if msg.header("Contact"):
            headers.append(("Contact", msg.header("Contact") or ""))
        if expires == 0:
            metrics.SIP_MESSAGES.labels("REGISTER", "unregistered").inc()
            self._emit(self.registry.unregister(device_id, now))  # before the device hears
            self._reply(peer, msg, 200, "OK", headers=headers)
            log.info("GB device %s unregistered", device_id)
            return
        result = self.registry.register(device_id, host=peer.addr[0], port=peer.addr[1],
                                        transport=peer.transport, expires=expires,
                                        call_id=msg.call_id, now=now)  # fmt: skip
        self._peers[device_id] = peer
        metrics.SIP_MESSAGES.labels("REGISTER", "registered").inc()
        self._reply(peer, msg, 200, "OK", headers=headers)
        self._emit(result.changes)
        if result.new_session:
            log.info("GB device %s registered from %s:%d (%s)", device_id, *peer.addr,
                     peer.transport)  # fmt: skip
            self.loop.create_task(self._after_register(device_id))

    async def _after_register(self, device_id: str) -> None:
        # Let the device process our 200 first; spread the queries when a whole network
        # registers at once (a thousand devices coming back after an outage).
        await asyncio.sleep(0.2 + random.random() * min(5.0, len(self.registry.devices) / 200))
        try:
            await self.query_catalog(device_id)
            await self._query(device_id, manscdp.device_info_query)
            await self._query(device_id, manscdp.device_status_query)
        except Exception as exc:  # noqa: BLE001 - reported on the device
            dev = self.registry.devices.get(device_id)
            if dev is not None:
                dev.last_error = f"catalog query failed: {exc}"
            log.warning("GB device %s: catalog query failed: %s", device_id, exc)

    # -- MESSAGE --------------------------------------------------------------------

    def _on_message(self, msg: SipMessage, peer: _Peer) -> None:
        device_id = sipmsg.user_of(msg.header("From") or "") or ""
        try:
            body = manscdp.parse_body(msg.body)
        except manscdp.ManscdpError as exc:
            self._refuse("bad_body", f"MESSAGE from {device_id}: {exc}")
            self._reply(peer, msg, 400, "Bad Request")
            return
        now = self.clock()
        dev = self.registry.devices.get(device_id)
        if dev is None:
            self._refuse("not_registered", f"{body.cmd} from {device_id} at {peer.addr[0]}")
            self._reply(peer, msg, 403, "Forbidden: not registered")
            return
        metrics.SIP_MESSAGES.labels(f"MESSAGE {body.cmd}", body.root).inc()
        key = (body.root, body.cmd)
        if key == ("Notify", "Keepalive"):
            changes = self.registry.keepalive(device_id, now)
            if changes is None:
                self._reply(peer, msg, 403, "Forbidden: registration expired")
                return
            self._peers[device_id] = peer
            self._reply(peer, msg, 200, "OK")
            self._emit(changes)
            return
        self._reply(peer, msg, 200, "OK")
        dev.last_seen = now
        if key == ("Response", "Catalog"):
            total, items = manscdp.catalog_items(body)
            self._emit(self.registry.catalog_page(device_id, body.sn, total, items, now))
        elif key == ("Notify", "Catalog"):
            _, items = manscdp.catalog_items(body)
            self._emit(self.registry.catalog_notify(device_id, items))
        elif key == ("Response", "DeviceInfo"):
            dev.info = {k: v for k in ("DeviceName", "Manufacturer", "Model", "Firmware",
                                       "Channel") if (v := body.text(k) or "")}  # fmt: skip
        elif key == ("Response", "DeviceStatus"):
            dev.status = {k: v for k in ("Online", "Status", "Encode", "Record", "DeviceTime",
                                         "Reason") if (v := body.text(k) or "")}  # fmt: skip
        elif key == ("Response", "RecordInfo"):
            self._record_page(body)
        elif key == ("Notify", "MediaStatus"):  # 121: a playback reached its end
            log.info("GB device %s: media status %s", device_id, body.text("NotifyType"))
            if body.text("NotifyType") == "121":
                for session in list(self._sessions.values()):
                    if session.device_id == device_id and session.ssrc.startswith("1"):
                        session.pipe.finish("the device sent the end of the recording")
        elif key == ("Notify", "Alarm"):
            log.info("GB device %s alarm: %s", device_id, body.text("AlarmDescription"))

    # -- outgoing requests ----------------------------------------------------------

    def _next_sn(self) -> int:
        self._sn += 1
        return self._sn

    def _peer(self, device_id: str) -> _Peer:
        peer = self._peers.get(device_id)
        dev = self.registry.devices.get(device_id)
        if peer is None or dev is None or dev.state != "online":
            raise InviteFailed("device_offline", f"device {device_id} is not registered")
        return peer

    def _new_request(self, method: str, device_id: str, target_id: str, peer: _Peer, *,
                     call_id: str | None = None, from_tag: str | None = None,
                     to_tag: str | None = None, cseq: int = 1, body: bytes = b"",
                     content_type: str = "Application/MANSCDP+xml",
                     headers: list[tuple[str, str]] | None = None) -> SipMessage:  # fmt: skip
        host = self.cfg.media_host
        port = self.tcp_port if peer.transport == "tcp" else self.udp_port
        domain = device_id[:10]
        return sipmsg.request(
            method, f"sip:{target_id}@{domain}", via_host=host, via_port=port,
            transport=peer.transport, from_uri=f"sip:{self.cfg.id}@{self.cfg.domain}",
            from_tag=from_tag or sipmsg.new_tag(), to_uri=f"sip:{target_id}@{domain}",
            to_tag=to_tag, call_id=call_id or sipmsg.new_call_id(), cseq=cseq,
            contact=f"sip:{self.cfg.id}@{host}:{port}", body=body, content_type=content_type,
            headers=headers,
        )  # fmt: skip

    async def _transact(self, peer: _Peer, msg: SipMessage, timeout: float) -> SipMessage:
        """Send a request and wait for its final response (UDP: retransmitted)."""
        num, method = msg.cseq
        key = (msg.call_id, num, method)
        fut: asyncio.Future[SipMessage] = self.loop.create_future()
        self._pending[key] = fut
        try:
            deadline = self.loop.time() + timeout
            # UDP: retransmit after T1, 2·T1, 4·T1 ... (at most 4 s apart); TCP: send once.
            interval = T1 if peer.transport == "udp" else timeout
            while True:
                self._send(peer, msg)
                wait = min(interval, deadline - self.loop.time())
                if wait <= 0:
                    raise TimeoutError(f"no answer to {method} within {timeout:g} s")
                try:
                    return await asyncio.wait_for(asyncio.shield(fut), wait)
                except TimeoutError:
                    if self.loop.time() >= deadline:
                        raise TimeoutError(f"no answer to {method} within {timeout:g} s") from None
                    interval = min(interval * 2, 4.0)
        finally:
            self._pending.pop(key, None)

    async def _query(self, device_id: str, build: Callable[[int, str], bytes]) -> int:
        peer = self._peer(device_id)
        sn = self._next_sn()
        msg = self._new_request("MESSAGE", device_id, device_id, peer, body=build(sn, device_id))
        answer = await self._transact(peer, msg, 8.0)
        if answer.status != 200:
            raise RuntimeError(f"the device answered {answer.status} {answer.reason}")
        return sn

    async def query_catalog(self, device_id: str) -> int:
        """Send Catalog query; the pages are collected as they come. Returns the SN."""
        sn = self._next_sn()
        self.registry.start_catalog(device_id, sn, self.clock())
        peer = self._peer(device_id)
        msg = self._new_request("MESSAGE", device_id, device_id, peer,
                                body=manscdp.catalog_query(sn, device_id))  # fmt: skip
        answer = await self._transact(peer, msg, 8.0)
        if answer.status != 200:
            raise RuntimeError(f"the device answered {answer.status} {answer.reason}")
        return sn

    def _record_page(self, body: manscdp.Body) -> None:
        query = self._records.get(body.sn)
        if query is None or query.done.done():
            return  # late or unknown: the query was answered or gave up
        total, items = manscdp.record_items(body)
        query.total = total
        query.items.extend(items[: max(0, total - len(query.items))])
        if len(query.items) >= total:
            query.done.set_result(None)

    async def query_records(self, device_id: str, channel_id: str, start_time: str,
                            end_time: str, timeout: float = 20.0
                            ) -> tuple[list[manscdp.RecordItem], bool]:  # fmt: skip
        """RecordInfo of a channel between two local times: its pages collected until
        SumNum; (items, complete) — incomplete when pages stopped coming in time."""
        peer = self._peer(device_id)
        sn = self._next_sn()
        query = _RecordQuery(channel_id, self.loop.create_future())
        self._records[sn] = query
        try:
            msg = self._new_request("MESSAGE", device_id, device_id, peer,
                                    body=manscdp.record_info_query(sn, channel_id, start_time,
                                                                   end_time))  # fmt: skip
            answer = await self._transact(peer, msg, 8.0)
            if answer.status != 200:
                raise RuntimeError(f"the device answered {answer.status} {answer.reason}")
            try:
                await asyncio.wait_for(asyncio.shield(query.done), timeout)
            except TimeoutError:
                if query.total is None:
                    raise TimeoutError(f"no RecordInfo answer within {timeout:g} s") from None
                return query.items, False
            return query.items, True
        finally:
            self._records.pop(sn, None)

    async def ptz(self, device_id: str, channel_id: str, ptz_cmd: str) -> None:
        """Send a PTZCmd (DeviceControl) to a channel; raises when the device refuses."""
        peer = self._peer(device_id)
        msg = self._new_request("MESSAGE", device_id, channel_id, peer,
                                body=manscdp.ptz_control(self._next_sn(), channel_id,
                                                         ptz_cmd))  # fmt: skip
        answer = await self._transact(peer, msg, 5.0)
        if answer.status != 200:
            raise RuntimeError(f"the device answered {answer.status} {answer.reason}")

    async def broadcast(self, device_id: str, target_id: str, audio: dict[str, bytes],
                        timeout: float = 10.0) -> dict[str, Any]:  # fmt: skip
        """Voice broadcast (§9.12): Notify Broadcast to the device for its audio output
        ``target_id``; the device INVITEs us for audio and we send ``audio`` (G.711 by
        codec name, ``PCMA``/``PCMU``, 8 kHz) over RTP in 20 ms packets, then BYE."""
        peer = self._peer(device_id)
        fut: asyncio.Future[tuple[SipMessage, _Peer]] = self.loop.create_future()
        self._broadcasts[target_id] = self._broadcasts[device_id] = fut
        port: int | None = None
        transport: asyncio.DatagramTransport | None = None
        try:
            body = manscdp.broadcast_notify(self._next_sn(), self.cfg.id, target_id)
            msg = self._new_request("MESSAGE", device_id, device_id, peer, body=body)
            answer = await self._transact(peer, msg, 5.0)
            if answer.status != 200:
                raise InviteFailed("invite_failed", f"broadcast to {target_id}: the device "
                                   f"answered {answer.status} {answer.reason}")  # fmt: skip
            try:
                invite, inv_peer = await asyncio.wait_for(asyncio.shield(fut), timeout)
            except TimeoutError:
                raise InviteFailed("invite_failed", f"broadcast to {target_id}: the device "
                                   f"did not INVITE for audio within {timeout:g} s") from None
            offered = _audio_offer(invite.body)
            codec = next((c for pt, c in ((8, "PCMA"), (0, "PCMU")) if pt in offered.pts
                          and c in audio), None)  # fmt: skip
            if offered.port is None or offered.host is None or codec is None:
                self._send(inv_peer, sipmsg.response(invite, 488, "Not Acceptable Here",
                                                     to_tag=sipmsg.new_tag()))  # fmt: skip
                raise InviteFailed("invite_failed", f"broadcast to {target_id}: the device "
                                   "offered no G.711 audio we have")  # fmt: skip
            port = self.ports.take()
            host = self.cfg.media_host
            dt, _ = await self.loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=(host, port))
            transport = cast(asyncio.DatagramTransport, dt)
            ssrc = offered.ssrc if offered.ssrc is not None else int(sdp.ssrc_for(
                self.cfg.domain, self._next_sn()))  # fmt: skip
            pt = 8 if codec == "PCMA" else 0
            answer_sdp = "\r\n".join([
                "v=0", f"o={self.cfg.id} 0 0 IN IP4 {host}", "s=Play", f"c=IN IP4 {host}",
                "t=0 0", f"m=audio {port} RTP/AVP {pt}", "a=sendonly",
                f"a=rtpmap:{pt} {codec}/8000", f"y={ssrc:010d}", "f=v/////a/1/8/1", "",
            ])  # fmt: skip
            our_tag = sipmsg.new_tag()
            self._send(inv_peer, sipmsg.response(
                invite, 200, "OK", to_tag=our_tag, body=answer_sdp.encode(),
                content_type="APPLICATION/SDP",
                headers=[("Contact", f"<sip:{self.cfg.id}@{host}:{self.udp_port}>")]))  # fmt: skip
            caller = sipmsg.user_of(invite.header("From") or "") or target_id
            their_tag = sipmsg.tag_of(invite.header("From") or "")
            await asyncio.sleep(0.1)  # the ACK; the device listens from its INVITE anyway
            data = audio[codec]
            seq, ts, sent = random.randint(0, 65535), random.randint(0, 1 << 31), 0
            started = self.loop.time()
            for i in range(0, len(data), 160):
                due = started + (i // 160) * 0.02
                delay = due - self.loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                packet = build_rtp(seq, ts, ssrc, data[i : i + 160], payload_type=pt,
                                   marker=i == 0)  # fmt: skip
                transport.sendto(packet, (offered.host, offered.port))
                seq, ts, sent = (seq + 1) & 0xFFFF, (ts + 160) & 0xFFFFFFFF, sent + 1
            bye = self._new_request("BYE", device_id, caller, inv_peer, call_id=invite.call_id,
                                    from_tag=our_tag, to_tag=their_tag,
                                    cseq=invite.cseq[0] + 1)  # fmt: skip
            try:
                await self._transact(inv_peer, bye, 2.0)
            except (TimeoutError, ConnectionError, OSError) as exc:
                log.info("broadcast BYE to %s: %s", target_id, exc)
            metrics.INVITES.labels("broadcast").inc()
            return {"codec": codec, "packets": sent, "seconds": round(sent * 0.02, 2)}
        finally:
            for key in (target_id, device_id):
                if self._broadcasts.get(key) is fut:
                    del self._broadcasts[key]
            if transport is not None:
                transport.close()
            if port is not None:
                self.ports.give_back(port)

    async def remove_device(self, device_id: str) -> bool:
        if device_id not in self.registry.devices:
            return False
        for session in [s for s in self._sessions.values() if s.device_id == device_id]:
            await self._bye(session)
        self._peers.pop(device_id, None)
        self._emit(self.registry.remove(device_id))
        return True

    # -- INVITE / BYE ---------------------------------------------------------------

    async def invite(self, device_id: str, channel_id: str,
                     playback: tuple[int, int] | None = None) -> MediaSession:  # fmt: skip
        """Ask a channel for its live stream (or, ``playback=(start, end)`` in epoch
        seconds, for its recording); the RTP port is open before the INVITE."""
        peer = self._peer(device_id)
        self._seq += 1
        ssrc = sdp.ssrc_for(self.cfg.domain, self._seq, live=playback is None)
        port = self.ports.take()
        pipe = PsPipe(timeout_s=self.cfg.media_timeout_s)
        sink = RtpSink(pipe, int(ssrc))
        session = MediaSession(device_id, channel_id, sipmsg.new_call_id(), sipmsg.new_tag(),
                               None, ssrc, port, pipe, sink)  # fmt: skip
        host = self.cfg.media_host
        try:
            if self.cfg.rtp_transport == "tcp_passive":
                session.closers.append(await open_tcp_passive(host, port, sink))
            elif self.cfg.rtp_transport == "udp":
                session.closers.append(await open_udp(host, port, sink))
            # tcp_active: the hub connects once the device has answered with its port
            body = sdp.offer(session_id=session.call_id, channel_id=channel_id, host=host,
                             port=port, ssrc=ssrc, transport=self.cfg.rtp_transport,
                             playback=playback)  # fmt: skip
            msg = self._new_request(
                "INVITE", device_id, channel_id, peer, call_id=session.call_id,
                from_tag=session.from_tag, body=body, content_type="APPLICATION/SDP",
                headers=[("Subject", f"{channel_id}:{ssrc},{self.cfg.id}:{int(bool(playback))}")],
            )  # fmt: skip
            self._sessions[session.call_id] = session
            try:
                answer = await self._transact(peer, msg, self.cfg.invite_timeout_s)
            except TimeoutError as exc:
                raise InviteFailed("invite_failed", f"channel {channel_id}: {exc}") from None
            session.to_tag = sipmsg.tag_of(answer.header("To") or "")
            self._ack(peer, session, msg, answer)
            if answer.status is None or answer.status >= 300:
                metrics.INVITES.labels("refused").inc()
                raise InviteFailed("invite_failed", f"channel {channel_id}: the device answered "
                                   f"{answer.status} {answer.reason}")  # fmt: skip
            offered = sdp.parse_answer(answer.body)
            if offered.ssrc is not None and offered.ssrc != int(ssrc):
                sink.reorder.ssrc = offered.ssrc  # the device chose its own (allowed)
            if self.cfg.rtp_transport == "tcp_active":
                if offered.port is None or not offered.host:
                    raise InviteFailed("invite_failed", f"channel {channel_id}: the answer "
                                       "has no media address to connect to (TCP active)")
                try:
                    session.closers.append(await open_tcp_active(
                        offered.host, offered.port, sink, self.cfg.media_timeout_s))  # fmt: skip
                except ConnectionError as exc:
                    await self._bye(session)  # the dialog exists: end it
                    raise InviteFailed("no_media", f"{channel_id}: no_media: {exc}") from None
            metrics.INVITES.labels("ok").inc()
            return session
        except BaseException:
            await self._close_media(session)
            raise

    def _ack(self, peer: _Peer, session: MediaSession, invite: SipMessage,
             answer: SipMessage) -> None:  # fmt: skip
        ack = self._new_request("ACK", session.device_id, session.channel_id, peer,
                                call_id=session.call_id, from_tag=session.from_tag,
                                to_tag=session.to_tag, cseq=invite.cseq[0])  # fmt: skip
        self._send(peer, ack)

    async def bye(self, session: MediaSession) -> None:
        await self._bye(session)

    async def _bye(self, session: MediaSession) -> None:
        if session.closed:
            return
        peer = self._peers.get(session.device_id)
        if peer is not None and session.to_tag is not None:
            session.cseq += 1
            msg = self._new_request("BYE", session.device_id, session.channel_id, peer,
                                    call_id=session.call_id, from_tag=session.from_tag,
                                    to_tag=session.to_tag, cseq=session.cseq)  # fmt: skip
            try:
                await self._transact(peer, msg, 2.0)
            except (TimeoutError, ConnectionError, OSError) as exc:
                log.info("BYE to %s: %s", session.channel_id, exc)
        await self._close_media(session)

    async def _close_media(self, session: MediaSession) -> None:
        session.closed = True
        self._sessions.pop(session.call_id, None)
        for closer in session.closers:
            closer.close()
        session.closers.clear()
        session.pipe.finish("the stream was closed")
        self.ports.give_back(session.port)

    def _on_bye(self, msg: SipMessage, peer: _Peer) -> None:
        session = self._sessions.get(msg.call_id)
        self._reply(peer, msg, 200 if session else 481,
                    "OK" if session else "Call/Transaction Does Not Exist")  # fmt: skip
        if session is not None:
            log.info("GB channel %s: the device ended the stream (BYE)", session.channel_id)
            session.to_tag = None  # no BYE back
            self.loop.create_task(self._close_media(session))

    # -- what the API reads (thread-safe snapshots) --------------------------------

    def devices(self) -> list[dict[str, Any]]:
        return self.call(self._devices(), timeout=5)

    async def _devices(self) -> list[dict[str, Any]]:
        out = []
        for dev in self.registry.devices.values():
            out.append({
                "id": dev.id, "state": dev.state, "since": dev.since,
                "transport": dev.transport, "host": dev.host, "port": dev.port,
                "registered_at": dev.registered_at, "expires_at": dev.expires_at,
                "last_keepalive": dev.last_keepalive, "channels": len(dev.channels),
                "video_channels": len(dev.video_channels()),
                "catalog_at": dev.catalog_at,
                "catalog_pending": None if dev.catalog is None else {
                    "received": len(dev.catalog.items), "total": dev.catalog.total},
                "name": dev.info.get("DeviceName"), "manufacturer": dev.info.get("Manufacturer"),
                "model": dev.info.get("Model"), "firmware": dev.info.get("Firmware"),
                "device_status": dict(dev.status),
                "last_error": dev.last_error,
            })  # fmt: skip
        return sorted(out, key=lambda d: d["id"])

    def channels(self, device_id: str) -> list[dict[str, Any]] | None:
        return self.call(self._channels(device_id), timeout=5)

    async def _channels(self, device_id: str) -> list[dict[str, Any]] | None:
        dev = self.registry.devices.get(device_id)
        if dev is None:
            return None
        from gb28181.channels import camera_id

        return [{
            "id": c.id, "name": c.name, "manufacturer": c.manufacturer, "model": c.model,
            "civil_code": c.civil_code, "parent_id": c.parent_id, "status": c.status,
            "online": dev.state == "online" and c.online, "ptz_type": c.ptz_type,
            "longitude": c.longitude, "latitude": c.latitude,
            "camera_id": camera_id(c.id) if c.type_code in ("131", "132") else None,
        } for c in dev.channels.values()]  # fmt: skip
