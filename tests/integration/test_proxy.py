"""Real client addresses behind a proxy (README "Behind a proxy").

Contract lines -> tests:

* from a TRUSTED_PROXIES peer, the client is the right-most untrusted
  X-Forwarded-For address (or Forwarded for=), and MAX_CLIENTS_PER_IP holds
  per client                                     -> test_forwarded_headers_from_a_trusted_proxy
* headers from untrusted peers are ignored       -> test_headers_from_untrusted_peers_are_ignored
* PROXY_PROTOCOL=on: v1 and v2 headers name the client; a trusted peer
  without one is closed                          -> test_proxy_protocol_v1_and_v2
"""

import socket
import struct

from conftest import read_response_head, upgrade_request


def upgrade(port, prefix=b"", headers=None, source="127.0.0.1"):
    """From source, send prefix (a PROXY header), then an upgrade; the HTTP
    status, or None if the server closed without one."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    try:
        s.sendall(prefix + upgrade_request("127.0.0.1", port, "/ws", headers))
        data = read_response_head(s)
    except (ConnectionResetError, BrokenPipeError):
        data = b""
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else None
    return status, s


def test_forwarded_headers_from_a_trusted_proxy(service):
    svc = service(TRUSTED_PROXIES="127.0.0.1, ::1", MAX_CLIENTS_PER_IP="1")
    a, sa = upgrade(svc.port, headers={"X-Forwarded-For": "9.9.9.9, 1.1.1.1"})
    b, sb = upgrade(svc.port, headers={"X-Forwarded-For": "2.2.2.2"})
    # a client writing its own X-Forwarded-For: the proxy appends the real one
    c, sc = upgrade(svc.port, headers={"X-Forwarded-For": "2.2.2.2, 1.1.1.1"})
    d, sd = upgrade(svc.port, headers={"Forwarded": 'for="[2001:db8::1]:4711";proto=https'})
    e, se = upgrade(svc.port, headers={"Forwarded": "for=192.0.2.7, for=2001:db8::1"})
    assert (a, b, c, d) == (101, 101, 429, 101), (a, b, c, d)
    assert e == 429  # 2001:db8::1 again (the right-most)
    for s in (sa, sb, sc, sd, se):
        s.close()


def test_headers_from_untrusted_peers_are_ignored(service):
    svc = service(TRUSTED_PROXIES="10.0.0.0/8", MAX_CLIENTS_PER_IP="1")
    a, sa = upgrade(svc.port, headers={"X-Forwarded-For": "1.1.1.1"})
    b, sb = upgrade(svc.port, headers={"X-Forwarded-For": "2.2.2.2"})
    assert (a, b) == (101, 429)  # both are 127.0.0.1
    sa.close()
    sb.close()


def proxy_v2(src, dst, sport, dport):
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    addrs = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return sig + bytes([0x21, 0x11]) + struct.pack("!H", len(addrs)) + addrs


def test_proxy_protocol_v1_and_v2(service):
    # the proxy is 127.0.0.2 (all of 127/8 is loopback); the test's own
    # requests from 127.0.0.1 are a direct client's
    svc = service(TRUSTED_PROXIES="127.0.0.2", PROXY_PROTOCOL="on", MAX_CLIENTS_PER_IP="1",
                  HANDSHAKE_TIMEOUT="2")
    px = "127.0.0.2"
    a, sa = upgrade(svc.port, b"PROXY TCP4 1.2.3.4 5.6.7.8 1111 80\r\n", source=px)
    b, sb = upgrade(svc.port, proxy_v2("4.3.2.1", "5.6.7.8", 2222, 80), source=px)
    c, sc = upgrade(svc.port, b"PROXY TCP4 1.2.3.4 5.6.7.8 3333 80\r\n", source=px)
    d, sd = upgrade(svc.port, proxy_v2("1.2.3.4", "5.6.7.8", 4444, 80), source=px)
    assert (a, b, c, d) == (101, 101, 429, 429), (a, b, c, d)
    # a trusted peer without the header, or with a bad one: closed, no reply
    e, se = upgrade(svc.port, source=px)
    f, sf = upgrade(svc.port, b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 80\r\n", source=px)
    assert (e, f) == (None, None)
    # the two clients behind it are served, the rest refused
    m = svc.metrics()
    assert m["refused_connections"] >= 2 and m["active_clients"] == 2, m
    for s in (sa, sb, sc, sd, se, sf):
        s.close()
