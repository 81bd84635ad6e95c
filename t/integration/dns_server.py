"""A small authoritative DNS server for rampart's tests: UDP on a loopback port,
answering A and AAAA questions from a table the test changes while it runs.

    dns = DnsServer().start()          # dns.port: the UDP port it listens on
    dns.set("backend.test", a=["127.0.0.2", "127.0.0.3"], ttl=1)
    dns.set("v6.test", aaaa=["::1"])
    dns.remove("backend.test")         # NXDOMAIN from now on
    dns.mode = "silent"                # drop every query (a dead name server)
    dns.mode = "servfail"              # answer SERVFAIL; "refused": REFUSED
    dns.mode = "answer"                # back to normal
    dns.queries("backend.test", "A")   # how many such questions arrived so far
    dns.stop()

A name in the table answers its records of the type asked (NOERROR with no
records when it has none of that type: NODATA); a name not in the table answers
NXDOMAIN. Both negative answers carry an SOA whose minimum is `negative_ttl`.
Names match without regard to case, and the question is echoed as it came, so a
client that randomizes the case of its questions (libevent's evdns) accepts the
answers. It runs as a thread of the test process; the DNS encoding is written
here with the standard library (RFC 1035), since no DNS package is assumed.
"""

import ipaddress
import socket
import struct
import threading

TYPE_A = 1
TYPE_SOA = 6
TYPE_AAAA = 28
CLASS_IN = 1
TYPE_NAMES = {TYPE_A: "A", TYPE_AAAA: "AAAA", TYPE_SOA: "SOA"}

RCODE_OK = 0
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_REFUSED = 5


def parse_question(packet):
    """(id, flags, name, qtype, qclass, end offset of the question) of a query, or None."""
    if len(packet) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if flags & 0x8000 or qdcount != 1:
        return None  # an answer, or not one question
    labels, i = [], 12
    while True:
        if i >= len(packet):
            return None
        n = packet[i]
        i += 1
        if n == 0:
            break
        if n & 0xC0 or i + n > len(packet):
            return None  # no compression in a question
        labels.append(packet[i:i + n].decode("ascii", "replace"))
        i += n
    if i + 4 > len(packet):
        return None
    qtype, qclass = struct.unpack("!HH", packet[i:i + 4])
    return qid, flags, ".".join(labels), qtype, qclass, i + 4


def encode_name(name):
    out = b""
    for label in name.strip(".").split("."):
        if label:
            raw = label.encode("ascii")
            out += bytes([len(raw)]) + raw
    return out + b"\0"


def rr(name_ptr, rtype, ttl, rdata):
    """A resource record whose owner is a compression pointer (bytes) to a name."""
    return name_ptr + struct.pack("!HHIH", rtype, CLASS_IN, ttl, len(rdata)) + rdata


class DnsServer:
    def __init__(self, host="127.0.0.1", negative_ttl=1):
        self.host = host
        self.negative_ttl = negative_ttl
        self.mode = "answer"
        self._lock = threading.Lock()
        self._table = {}  # lower-case name -> {"A": [...], "AAAA": [...], "ttl": n}
        self._counts = {}  # (name, type name) -> questions seen
        self._sock = None
        self._thread = None
        self._stop = threading.Event()
        self.port = None

    # -- the table ---------------------------------------------------------

    def set(self, name, a=(), aaaa=(), ttl=1):
        """name now has these A and AAAA records, with this TTL (seconds)."""
        for addr in a:
            ipaddress.IPv4Address(addr)
        for addr in aaaa:
            ipaddress.IPv6Address(addr)
        with self._lock:
            self._table[name.lower().strip(".")] = {"A": list(a), "AAAA": list(aaaa), "ttl": ttl}

    def remove(self, name):
        """name does not exist any more (NXDOMAIN)."""
        with self._lock:
            self._table.pop(name.lower().strip("."), None)

    def queries(self, name, qtype="A"):
        """How many questions for name and type (e.g. "A", "AAAA") arrived."""
        with self._lock:
            return self._counts.get((name.lower().strip("."), qtype), 0)

    # -- serving -----------------------------------------------------------

    def start(self):
        self._sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET,
                                   socket.SOCK_DGRAM)
        self._sock.bind((self.host, 0))
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="dns-server", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        if self._sock:
            self._sock.close()

    @property
    def addr(self):
        """host:port as a `resolver` line wants it."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def _serve(self):
        while not self._stop.is_set():
            try:
                packet, peer = self._sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            reply = self.answer(packet)
            if reply is not None:
                try:
                    self._sock.sendto(reply, peer)
                except OSError:
                    pass

    def answer(self, packet):
        """The reply to one query packet (bytes), or None to stay silent."""
        q = parse_question(packet)
        if q is None:
            return None
        qid, flags, name, qtype, qclass, qend = q
        key = name.lower().strip(".")
        with self._lock:
            tname = TYPE_NAMES.get(qtype, str(qtype))
            self._counts[(key, tname)] = self._counts.get((key, tname), 0) + 1
            mode = self.mode
            entry = self._table.get(key)
            entry = dict(entry) if entry else None
        if mode == "silent":
            return None
        question = packet[12:qend]  # echoed as it came, case and all
        rd = flags & 0x0100
        head_flags = 0x8000 | 0x0400 | rd | 0x0080  # QR, AA, RD as asked, RA
        if mode in ("servfail", "refused"):
            rcode = RCODE_SERVFAIL if mode == "servfail" else RCODE_REFUSED
            return struct.pack("!HHHHHH", qid, head_flags | rcode, 1, 0, 0, 0) + question
        answers = []
        if entry is not None and qclass == CLASS_IN:
            if qtype == TYPE_A:
                answers = [rr(b"\xc0\x0c", TYPE_A, entry["ttl"],
                              ipaddress.IPv4Address(a).packed) for a in entry["A"]]
            elif qtype == TYPE_AAAA:
                answers = [rr(b"\xc0\x0c", TYPE_AAAA, entry["ttl"],
                              ipaddress.IPv6Address(a).packed) for a in entry["AAAA"]]
        authority = []
        rcode = RCODE_OK
        if not answers:
            rcode = RCODE_OK if entry is not None else RCODE_NXDOMAIN
            # the SOA of the negative answer: owner the question's name, root names
            soa = encode_name("ns.test") + encode_name("hostmaster.test") + struct.pack(
                "!IIIII", 1, 3600, 600, 86400, self.negative_ttl)
            authority = [rr(b"\xc0\x0c", TYPE_SOA, self.negative_ttl, soa)]
        head = struct.pack("!HHHHHH", qid, head_flags | rcode, 1, len(answers), len(authority), 0)
        return head + question + b"".join(answers) + b"".join(authority)
