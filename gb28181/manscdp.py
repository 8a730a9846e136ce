"""MANSCDP XML (GB/T 28181 §A): the bodies of MESSAGE requests, read and written.

Devices send GB2312 (the standard), GBK, GB18030 or UTF-8, declared or not, and
sometimes declare one and send another: bytes are decoded as UTF-8 when they are valid
UTF-8, else by the declaration, else as GB18030 (a superset of GB2312 and GBK). Pure.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # noqa: N817 - only to build; parsing is defused
from dataclasses import dataclass, field

from defusedxml import ElementTree as SafeET

_DECL_RE = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9_.-]+)[\"'][^>]*\?>")
_DECL_ANY_RE = re.compile(r"^\s*<\?xml[^>]*\?>")
_GB = {"gb2312", "gbk", "gb18030", "cp936", "euc-cn"}


class ManscdpError(ValueError):
    """A body that is not MANSCDP XML we can read (the reason says why)."""


def decode_xml(data: bytes) -> str:
    """The XML text of a body in any of the encodings devices use."""
    m = _DECL_RE.match(data)
    declared = m.group(1).decode("ascii").lower() if m else None
    # Strict UTF-8 first: Chinese text in GB2312/GBK is almost never valid UTF-8, while
    # UTF-8 bytes often decode as (wrong) GB18030, and devices that declare GB2312 and
    # send UTF-8 are common.
    tries = ["utf-8"]
    if declared:
        tries.append("gb18030" if declared in _GB else declared)
    tries.append("gb18030")
    for enc in tries:
        try:
            return data.decode(enc)
        except (UnicodeDecodeError, LookupError):
            continue
    raise ManscdpError("body is neither UTF-8 nor GB18030/GBK/GB2312")


def parse_xml(data: bytes) -> ET.Element:
    text = _DECL_ANY_RE.sub("", decode_xml(data), count=1)
    try:
        root = SafeET.fromstring(text)
    except Exception as exc:  # noqa: BLE001 - ParseError or a defusedxml refusal
        raise ManscdpError(f"invalid XML: {exc}") from None
    if not isinstance(root, ET.Element):
        raise ManscdpError("invalid XML: no root element")
    return root


def _text(el: ET.Element | None, name: str) -> str | None:
    if el is None:
        return None
    child = el.find(name)
    if child is None or child.text is None:
        return None
    return child.text.strip() or None


@dataclass
class Body:
    """A MANSCDP message: its root (Query, Response, Notify, Control), CmdType, SN,
    DeviceID and the element itself for the rest."""

    root: str
    cmd: str
    sn: int
    device_id: str
    element: ET.Element

    def text(self, name: str) -> str | None:
        return _text(self.element, name)


def parse_body(data: bytes) -> Body:
    el = parse_xml(data)
    cmd = _text(el, "CmdType")
    device = _text(el, "DeviceID")
    if not cmd:
        raise ManscdpError(f"<{el.tag}> has no CmdType")
    if not device:
        raise ManscdpError(f"<{el.tag}> {cmd} has no DeviceID")
    sn_text = _text(el, "SN") or "0"
    try:
        sn = int(sn_text)
    except ValueError:
        raise ManscdpError(f"SN {sn_text!r} is not a number") from None
    return Body(root=el.tag, cmd=cmd, sn=sn, device_id=device, element=el)


@dataclass
class CatalogItem:
    """One channel (or a civil-code/business-group/organisation node) of a catalog."""

    id: str
    name: str = ""
    manufacturer: str | None = None
    model: str | None = None
    civil_code: str | None = None
    parent_id: str | None = None
    status: str | None = None  # ON / OFF (some send ONLINE / OFFLINE)
    longitude: float | None = None
    latitude: float | None = None
    ptz_type: int | None = None
    event: str | None = None  # notifications: ON OFF VLOST DEFECT ADD DEL UPDATE
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def online(self) -> bool:
        return (self.status or "ON").upper() in ("ON", "ONLINE", "OK")

    @property
    def type_code(self) -> str:
        return self.id[10:13] if len(self.id) == 20 else ""


def _float(value: str | None) -> float | None:
    try:
        return None if value is None else float(value)
    except ValueError:
        return None


def catalog_items(body: Body) -> tuple[int, list[CatalogItem]]:
    """(SumNum, items) of a Catalog response or notification."""
    try:
        total = int(body.text("SumNum") or "0")
    except ValueError:
        raise ManscdpError(f"SumNum {body.text('SumNum')!r} is not a number") from None
    items: list[CatalogItem] = []
    dl = body.element.find("DeviceList")
    for item in dl.findall("Item") if dl is not None else []:
        cid = _text(item, "DeviceID")
        if not cid:
            continue
        info = item.find("Info")
        ptz = _text(info, "PTZType")
        items.append(CatalogItem(
            id=cid, name=_text(item, "Name") or cid,
            manufacturer=_text(item, "Manufacturer"), model=_text(item, "Model"),
            civil_code=_text(item, "CivilCode"), parent_id=_text(item, "ParentID"),
            status=_text(item, "Status"),
            longitude=_float(_text(item, "Longitude")), latitude=_float(_text(item, "Latitude")),
            ptz_type=int(ptz) if ptz and ptz.isdigit() else None,
            event=(_text(item, "Event") or "").upper() or None,
        ))  # fmt: skip
    return total, items


def build(root: str, cmd: str, sn: int, device_id: str, fields: list[tuple[str, str]] | None = None,
          encoding: str = "GB2312") -> bytes:  # fmt: skip
    """A MANSCDP body in ``encoding`` (GB2312 as the standard says; names are Chinese)."""
    el = ET.Element(root)
    for name, value in [("CmdType", cmd), ("SN", str(sn)), ("DeviceID", device_id),
                        *(fields or [])]:  # fmt: skip
        child = ET.SubElement(el, name)
        child.text = value
    text = ET.tostring(el, encoding="unicode")
    codec = "gb18030" if encoding.lower() in _GB else encoding
    return f'<?xml version="1.0" encoding="{encoding}"?>\r\n{text}\r\n'.encode(codec)


def catalog_response(sn: int, device_id: str, total: int,
                     items: list[dict[str, str]]) -> bytes:  # fmt: skip
    """One page of a Catalog answer: ``total`` is SumNum, ``items`` this page's."""
    el = ET.Element("Response")
    for name, value in (("CmdType", "Catalog"), ("SN", str(sn)), ("DeviceID", device_id),
                        ("SumNum", str(total))):  # fmt: skip
        ET.SubElement(el, name).text = value
    dl = ET.SubElement(el, "DeviceList", Num=str(len(items)))
    for fields in items:
        item = ET.SubElement(dl, "Item")
        for name, value in fields.items():
            ET.SubElement(item, name).text = value
    text = ET.tostring(el, encoding="unicode")
    return f'<?xml version="1.0" encoding="GB2312"?>\r\n{text}\r\n'.encode("gb18030")


def catalog_query(sn: int, device_id: str) -> bytes:
    return build("Query", "Catalog", sn, device_id)


def device_info_query(sn: int, device_id: str) -> bytes:
    return build("Query", "DeviceInfo", sn, device_id)


def device_status_query(sn: int, device_id: str) -> bytes:
    return build("Query", "DeviceStatus", sn, device_id)


def keepalive(sn: int, device_id: str) -> bytes:
    return build("Notify", "Keepalive", sn, device_id, [("Status", "OK")])


def alarm_notify(sn: int, channel_id: str, *, priority: int, method: int, time_iso: str,
                 description: str, alarm_type: int | None = None,
                 lon: float | None = None, lat: float | None = None) -> bytes:  # fmt: skip
    """MESSAGE Notify Alarm (§A.2.5): ``method`` 5 is a video alarm, whose AlarmType
    (2022: in <Info><AlarmTypeParam>; 2016: AlarmType) says which analysis fired."""
    fields = [("AlarmPriority", str(priority)), ("AlarmMethod", str(method)),
              ("AlarmTime", time_iso), ("AlarmDescription", description)]  # fmt: skip
    if lon is not None and lat is not None:
        fields += [("Longitude", f"{lon:.6f}"), ("Latitude", f"{lat:.6f}")]
    el_bytes = build("Notify", "Alarm", sn, channel_id, fields)
    if alarm_type is None:
        return el_bytes
    # <Info><AlarmType>n</AlarmType></Info> as both revisions read it.
    text = el_bytes.decode("gb18030")
    info = f"<Info><AlarmType>{alarm_type}</AlarmType></Info></Notify>"
    return text.replace("</Notify>", info).encode("gb18030")


@dataclass
class RecordItem:
    """One recording on a device (a RecordInfo answer's Item): local times as sent."""

    device_id: str
    name: str = ""
    file_path: str | None = None
    address: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    secrecy: str | None = None
    type: str | None = None  # time, alarm, manual, all
    recorder_id: str | None = None
    file_size: int | None = None


def record_info_query(sn: int, channel_id: str, start_time: str, end_time: str,
                      record_type: str = "all") -> bytes:  # fmt: skip
    """Query RecordInfo (§A.2.4.5) of a channel between two local times (YYYY-MM-DDThh:mm:ss)."""
    return build("Query", "RecordInfo", sn, channel_id, [
        ("StartTime", start_time), ("EndTime", end_time), ("Secrecy", "0"),
        ("Type", record_type),
    ])  # fmt: skip


def record_items(body: Body) -> tuple[int, list[RecordItem]]:
    """(SumNum, items) of one page of a RecordInfo answer."""
    try:
        total = int(body.text("SumNum") or "0")
    except ValueError:
        raise ManscdpError(f"SumNum {body.text('SumNum')!r} is not a number") from None
    out: list[RecordItem] = []
    rl = body.element.find("RecordList")
    for item in rl.findall("Item") if rl is not None else []:
        size = _text(item, "FileSize")
        out.append(RecordItem(
            device_id=_text(item, "DeviceID") or body.device_id, name=_text(item, "Name") or "",
            file_path=_text(item, "FilePath"), address=_text(item, "Address"),
            start_time=_text(item, "StartTime"), end_time=_text(item, "EndTime"),
            secrecy=_text(item, "Secrecy"), type=_text(item, "Type"),
            recorder_id=_text(item, "RecorderID"),
            file_size=int(size) if size and size.isdigit() else None,
        ))  # fmt: skip
    return total, out


def ptz_control(sn: int, channel_id: str, ptz_cmd: str, priority: int = 5) -> bytes:
    """Control DeviceControl with a PTZCmd (§A.2.3.1) for a channel."""
    el = ET.Element("Control")
    for name, value in (("CmdType", "DeviceControl"), ("SN", str(sn)),
                        ("DeviceID", channel_id), ("PTZCmd", ptz_cmd)):  # fmt: skip
        ET.SubElement(el, name).text = value
    info = ET.SubElement(el, "Info")
    ET.SubElement(info, "ControlPriority").text = str(priority)
    text = ET.tostring(el, encoding="unicode")
    return f'<?xml version="1.0" encoding="GB2312"?>\r\n{text}\r\n'.encode("gb18030")


def broadcast_notify(sn: int, source_id: str, target_id: str) -> bytes:
    """Notify Broadcast (§A.2.5.8): the platform ``source_id`` will speak to the audio
    output ``target_id``; the device answers by INVITEing the platform for audio."""
    el = ET.Element("Notify")
    for name, value in (("CmdType", "Broadcast"), ("SN", str(sn)), ("SourceID", source_id),
                        ("TargetID", target_id)):  # fmt: skip
        ET.SubElement(el, name).text = value
    text = ET.tostring(el, encoding="unicode")
    return f'<?xml version="1.0" encoding="GB2312"?>\r\n{text}\r\n'.encode("gb18030")
