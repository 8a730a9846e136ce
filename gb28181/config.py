"""The ``sip:`` section of the hub config: Shaobing as a GB/T 28181 platform."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, StrictBool, field_validator, model_validator

from camera_registry.config import Programme
from core.model import StrictModel

GB_ID_RE = re.compile(r"^\d{20}$")
Transport = Literal["udp", "tcp"]
TRANSPORTS: tuple[Transport, ...] = ("udp", "tcp")


def _gb_id(value: str) -> str:
    if not GB_ID_RE.match(value):
        raise ValueError(f"{value!r} must be a GB/T 28181 id of exactly 20 digits")
    return value


class SipDevice(StrictModel):
    """A device or lower platform allowed to register, with its own password."""

    id: str = Field(description="its 20-digit GB/T 28181 id (SIP user)")
    password: str | None = Field(
        None, repr=False, description="its REGISTER password; default: sip.password"
    )
    name: str = Field("", max_length=200)

    _id = field_validator("id")(lambda v: _gb_id(v))


class SipConfig(StrictModel):
    """Shaobing as a GB/T 28181 platform: devices and lower platforms register to it,
    their catalogs become cameras, their streams come by INVITE (see docs/integrators.md)."""

    enabled: StrictBool = Field(False, description="start the SIP server")
    id: str = Field("34020000002000000001", description="the hub's 20-digit SIP id "
                    "(type code 200: a platform)")  # fmt: skip
    domain: str = Field("3402000000", pattern=r"^\d{10}$",
                        description="the SIP domain (realm): the first 10 digits of the ids")
    host: str = Field("127.0.0.1", description="address the SIP server listens on")
    port: int = Field(5060, ge=0, lt=65536, description="SIP port (UDP and TCP); 0: any")
    transports: list[Transport] = Field(default_factory=lambda: list(TRANSPORTS), min_length=1)
    advertise_host: str | None = Field(
        None, description="the address devices reach the hub at (SDP c=, Via, Contact); "
        "default: host (set it when listening on 0.0.0.0)",
    )  # fmt: skip
    password: str | None = Field(
        None, repr=False, description="the shared REGISTER password of devices not listed "
        "in devices with their own",
    )  # fmt: skip
    devices: list[SipDevice] = Field(default_factory=list)
    admit_unknown: StrictBool = Field(
        True, description="devices not listed in devices may register with the shared "
        "password; false: they are refused (403)",
    )  # fmt: skip
    register_expires_s: int = Field(3600, ge=60, le=86400,
                                    description="the most a registration lasts")
    keepalive_interval_s: float = Field(60.0, gt=0, description="the devices' heartbeat "
                                        "period (set the same on the device)")  # fmt: skip
    keepalive_misses: int = Field(3, ge=1, le=10, description="missed heartbeats: offline")
    catalog_timeout_s: float = Field(60.0, gt=0,
                                     description="a catalog query whose pages stop coming is "
                                     "closed with what came after this time")  # fmt: skip
    max_channels: int = Field(50_000, ge=1, description="channels kept per device")
    rtp_port_min: int = Field(30000, ge=1024, lt=65536)
    rtp_port_max: int = Field(30999, ge=1024, lt=65536)
    rtp_transport: Literal["udp", "tcp_passive", "tcp_active"] = Field(
        "udp", description="how devices send media: UDP; TCP to a port the hub opens "
        "(tcp_passive); or TCP from the hub to the port the device answers with (tcp_active, "
        "through NAT or firewalls that only let the hub connect out); RFC 4571 framing",
    )  # fmt: skip
    invite_timeout_s: float = Field(5.0, gt=0, description="wait for the INVITE's answer")
    media_timeout_s: float = Field(5.0, gt=0,
                                   description="no RTP for this long: the stream is dead")
    live_linger_s: float = Field(
        10.0, ge=0, le=600, description="a live view of a channel nobody analyses opens a "
        "stream on demand; BYE this long after the last viewer left",
    )  # fmt: skip
    live_backoff_max_s: float = Field(
        10.0, gt=0, le=300,
        description="an on-demand stream that dies is invited again with backoff up to this",
    )  # fmt: skip
    area_names: dict[str, str] = Field(
        default_factory=dict,
        description="civil code (6 digits: county, 8: township, 10-12: village) → the area "
        "name used in the camera tree, e.g. {'341502': '金安区'}; default: the code itself",
    )
    channels_enabled: StrictBool = Field(
        False, description="imported channels are enabled cameras (each then holds a stream "
        "for analysis); false: imported disabled, enable the ones to analyse",
    )  # fmt: skip
    programme: Programme = Field("other", description="programme of imported cameras")

    _id = field_validator("id")(lambda v: _gb_id(v))

    @model_validator(mode="after")
    def _ports(self) -> SipConfig:
        if self.rtp_port_min > self.rtp_port_max:
            raise ValueError("rtp_port_min is above rtp_port_max")
        ids = [d.id for d in self.devices]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate device id(s): {dupes}")
        if not self.admit_unknown and not self.devices:
            raise ValueError("admit_unknown is false and no devices are listed: none can register")
        if self.admit_unknown and self.password is None and self.enabled:
            raise ValueError("admit_unknown needs a shared password (sip.password): devices "
                             "must not register without one")  # fmt: skip
        return self

    def password_for(self, device_id: str) -> str | None:
        """The password a device must prove; None: the device may not register."""
        for dev in self.devices:
            if dev.id == device_id:
                return dev.password if dev.password is not None else self.password
        return self.password if self.admit_unknown else None

    @property
    def media_host(self) -> str:
        return self.advertise_host or self.host
