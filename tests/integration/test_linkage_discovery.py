"""WS-Discovery on a named interface, inside network namespaces this test creates:

    client ns ──veth (10.231.1.0/24)── camera ns: ipycam, its WS-Discovery on
        └────veth (10.231.2.0/24)── listener ns: joined to 239.255.255.250:3702

``shaobing cameras discover --interface <first veth>`` must find the camera (address,
scopes, name; then its ONVIF profiles with --probe) and send nothing through the
second veth: the listener there counts what reaches it (and does receive a Probe
sent on its own interface, so it is listening). No packet leaves the namespaces.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from linkage.discovery import DiscoveryError, discover, parse_probe_match, probe_message

ROOT = Path(__file__).resolve().parents[2]
PEERS = ROOT / "tests" / "peers"
USER, PASSWORD = "admin", "Disc-pw-2026"
ONVIF_PORT = 18080

LISTENER = textwrap.dedent("""
    import socket, struct, sys
    out = open(sys.argv[2], "a", buffering=1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", 3702))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                 struct.pack("4s4s", socket.inet_aton("239.255.255.250"),
                             socket.inet_aton(sys.argv[1])))
    print("READY", flush=True)
    while True:
        data, addr = s.recvfrom(65535)
        out.write(f"{addr[0]} {len(data)} {b'Probe' in data}\\n")
""")


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True)


class Namespaces:
    def __init__(self) -> None:
        tag = f"{os.getpid() % 100000}"
        self.client, self.camera, self.other = f"sbl{tag}c", f"sbl{tag}k", f"sbl{tag}o"
        self.cam_if, self.other_if = f"sbl{tag}a", f"sbl{tag}b"  # in the client ns
        self.procs: list[subprocess.Popen[str]] = []

    def up(self) -> None:
        for ns in (self.client, self.camera, self.other):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        for mine, peer, ns, net in ((self.cam_if, self.cam_if + "p", self.camera, "10.231.1"),
                                    (self.other_if, self.other_if + "p", self.other, "10.231.2")):
            sh("ip", "link", "add", mine, "netns", self.client, "type", "veth", "peer", "name",
               peer, "netns", ns)  # fmt: skip
            sh("ip", "-n", self.client, "addr", "add", f"{net}.1/24", "dev", mine)
            sh("ip", "-n", ns, "addr", "add", f"{net}.2/24", "dev", peer)
            sh("ip", "-n", self.client, "link", "set", mine, "up")
            sh("ip", "-n", ns, "link", "set", peer, "up")

    def start(self, ns: str, *argv: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
        self.procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != "READY":
            pytest.fail(f"{argv[1]} in {ns} did not start: {line} "
                        f"{proc.stderr.read() if proc.stderr else ''}")  # fmt: skip
        return proc

    def run(self, ns: str, *argv: str, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True,
                              timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT),
                                               **(env or {})})  # fmt: skip

    def down(self) -> None:
        for proc in self.procs:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        for ns in (self.client, self.camera, self.other):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture
def nets(tmp_path: Path) -> Iterator[Namespaces]:
    n = Namespaces()
    try:
        n.up()
    except subprocess.CalledProcessError as exc:
        n.down()
        pytest.fail(f"cannot create network namespaces (root needed): {exc.stderr}")
    yield n
    n.down()


def test_discover_on_the_named_interface_only(nets: Namespaces, tmp_path: Path) -> None:
    nets.start(nets.camera, sys.executable, str(PEERS / "ipycam_ptz.py"), "--ip", "10.231.1.2",
               "--onvif-port", str(ONVIF_PORT), "--workdir", str(tmp_path / "cam"),
               "--user", USER, "--password", PASSWORD, "--name", "水库球机", "--discovery")
    heard = tmp_path / "heard.txt"
    listener = tmp_path / "listener.py"
    listener.write_text(LISTENER)
    nets.start(nets.other, sys.executable, str(listener), "10.231.2.2", str(heard))

    r = nets.run(nets.client, sys.executable, "-m", "shaobing.cli", "cameras", "discover",
                 "--interface", nets.cam_if, "--timeout", "2", "--probe", "--user", USER,
                 "--password-env", "CAM_PW", env={"CAM_PW": PASSWORD})  # fmt: skip
    assert r.returncode == 0, r.stderr
    devices = json.loads(r.stdout)
    assert len(devices) == 1, devices
    device = devices[0]
    assert device["address"] == "10.231.1.2"
    assert device["xaddrs"] == [f"http://10.231.1.2:{ONVIF_PORT}/onvif/device_service"]
    assert device["name"] == "水库球机" and device["endpoint"].startswith("urn:uuid:")
    assert "onvif://www.onvif.org/Profile/Streaming" in device["scopes"]
    assert "NetworkVideoTransmitter" in " ".join(device["types"])
    assert device["probe"]["main_uri"].startswith("rtsp://10.231.1.2:"), device
    assert PASSWORD not in r.stdout + r.stderr
    time.sleep(0.5)
    assert not heard.exists() or heard.read_text() == ""  # nothing on the other interface

    # Found, probed and registered in one step; the registry holds it, password encrypted.
    config = tmp_path / "hub.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\n")
    r = nets.run(nets.client, sys.executable, "-m", "shaobing.cli", "cameras", "discover",
                 "--interface", nets.cam_if, "--timeout", "2", "--add", "--config", str(config),
                 "--area", "示例县/城关镇", "--user", USER, "--password-env", "CAM_PW",
                 env={"CAM_PW": PASSWORD})  # fmt: skip
    assert r.returncode == 0, r.stderr
    [added] = json.loads(r.stdout)
    assert added["added"] is True and added["camera_id"].startswith("onvif-")
    r = subprocess.run([sys.executable, "-m", "shaobing.cli", "cameras", "list", "--config",
                        str(config)], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"{added['camera_id']}\t水库球机\t" in r.stdout and "示例县/城关镇" in r.stdout
    assert f"onvif://10.231.1.2:{ONVIF_PORT}" in r.stdout and PASSWORD not in r.stdout
    assert PASSWORD.encode() not in (tmp_path / "data" / "shaobing.db").read_bytes()

    # Positive control: a Probe on the listener's interface does reach it.
    r = nets.run(nets.client, sys.executable, "-m", "shaobing.cli", "cameras", "discover",
                 "--interface", nets.other_if, "--timeout", "1")  # fmt: skip
    assert r.returncode == 0 and json.loads(r.stdout) == []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (heard.exists() and heard.read_text()):
        time.sleep(0.05)
    assert "10.231.2.1" in heard.read_text() and "True" in heard.read_text()


def test_interface_errors_are_clear(nets: Namespaces) -> None:
    r = nets.run(nets.client, sys.executable, "-m", "shaobing.cli", "cameras", "discover",
                 "--interface", "eth9")  # fmt: skip
    assert r.returncode == 2 and "no network interface 'eth9'" in r.stderr
    sh("ip", "-n", nets.client, "addr", "flush", "dev", nets.cam_if)
    r = nets.run(nets.client, sys.executable, "-m", "shaobing.cli", "cameras", "discover",
                 "--interface", nets.cam_if)  # fmt: skip
    assert r.returncode == 2 and "has no IPv4 address" in r.stderr
    with pytest.raises(DiscoveryError, match="name the interface"):
        discover("")


def test_parse_probe_matches() -> None:
    probe = probe_message("urn:uuid:1")
    assert b"NetworkVideoTransmitter" in probe and b"urn:uuid:1" in probe
    answer = (
        b'<?xml version="1.0"?><e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope" '
        b'xmlns:w="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
        b'xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"><e:Header>'
        b"<w:RelatesTo>urn:uuid:1</w:RelatesTo></e:Header><e:Body><d:ProbeMatches><d:ProbeMatch>"
        b"<w:EndpointReference><w:Address>urn:uuid:cam</w:Address></w:EndpointReference>"
        b"<d:Types>dn:NetworkVideoTransmitter</d:Types><d:Scopes>"
        b"onvif://www.onvif.org/hardware/DS-2DE4225IW onvif://www.onvif.org/name/%E5%A4%A7%E5%9D%9D"
        b"</d:Scopes><d:XAddrs>http://10.0.0.9/onvif/device_service http://[fe80::1]/onvif"
        b"</d:XAddrs></d:ProbeMatch></d:ProbeMatches></e:Body></e:Envelope>"
    )
    [device] = parse_probe_match(answer, "10.0.0.9", relates_to="urn:uuid:1")
    assert (device.model, device.name, device.endpoint) == ("DS-2DE4225IW", "大坝", "urn:uuid:cam")
    assert device.onvif_host_port == ("10.0.0.9", 80)
    assert parse_probe_match(answer, "10.0.0.9", relates_to="urn:uuid:2") == []  # not ours
    assert parse_probe_match(b"garbage", "10.0.0.9") == []
