"""Prometheus instruments of the SIP server and its media (default registry: /metrics)."""

from __future__ import annotations

from prometheus_client import Counter

SIP_MESSAGES = Counter(
    "shaobing_sip_messages_total", "SIP messages received, by method/status and outcome",
    ["kind", "outcome"],
)  # fmt: skip
SIP_REFUSED = Counter(
    "shaobing_sip_refused_total", "SIP requests refused or dropped, by reason", ["reason"]
)
RTP_PACKETS = Counter(
    "shaobing_gb_rtp_packets_total", "RTP packets of GB/T 28181 streams, by outcome", ["outcome"]
)
INVITES = Counter("shaobing_gb_invites_total", "INVITEs sent to devices, by result", ["result"])
