# Sends a TCP SYN straight into tun0 (an AF_PACKET socket, bypassing the
# kernel's own routing of loopback and unspecified destinations) for each
# address:port argument, and prints how tungate answered: RST, SYNACK or
# NONE (nothing within a second). The device is $TUN_DEVICE (default
# tun0). Used by e2e_run_test.go and e2e_loopback_test.go.
import os, socket, struct, sys, time, ipaddress

ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF

def tcp_syn(src, dst, sport, dport, pseudo):
    hdr = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x02, 65535, 0, 0)
    c = csum(pseudo + hdr)
    return hdr[:16] + struct.pack("!H", c) + hdr[18:]

def packet(src, dst, sport, dport):
    if dst.version == 4:
        pseudo = src.packed + dst.packed + struct.pack("!BBH", 0, 6, 20)
        tcp = tcp_syn(src, dst, sport, dport, pseudo)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 1, 0, 64, 6, 0, src.packed, dst.packed)
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        return ETH_P_IP, ip + tcp
    pseudo = src.packed + dst.packed + struct.pack("!I3xB", 20, 6)
    tcp = tcp_syn(src, dst, sport, dport, pseudo)
    ip = struct.pack("!IHBB16s16s", 6 << 28, 20, 6, 64, src.packed, dst.packed)
    return ETH_P_IPV6, ip + tcp

def answer(sock, dst, sport):
    deadline = time.time() + 1
    while time.time() < deadline:
        sock.settimeout(max(0.01, deadline - time.time()))
        try:
            b = sock.recv(65535)
        except socket.timeout:
            break
        if not b:
            continue
        if b[0] >> 4 == 4:
            if b[9] != 6 or ipaddress.ip_address(b[12:16]) != dst:
                continue
            tcp = b[(b[0] & 15) * 4:]
        else:
            if b[6] != 6 or ipaddress.ip_address(b[8:24]) != dst:
                continue
            tcp = b[40:]
        if struct.unpack("!H", tcp[2:4])[0] != sport:
            continue
        flags = tcp[13]
        if flags & 0x04:
            return "RST"
        if flags & 0x12 == 0x12:
            return "SYNACK"
    return "NONE"

for i, arg in enumerate(sys.argv[1:]):
    host, port = arg.rsplit(":", 1)
    dst = ipaddress.ip_address(host.strip("[]"))
    src = ipaddress.ip_address("198.18.0.1" if dst.version == 4 else "fd74:6761:7465::1")
    sport = 40000 + i
    proto, pkt = packet(src, dst, sport, int(port))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(proto))
    s.bind((os.environ.get("TUN_DEVICE", "tun0"), proto))
    s.send(pkt)
    print(arg, answer(s, dst, sport), flush=True)
    s.close()
