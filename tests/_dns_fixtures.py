"""A DNS server on loopback that answers TXT questions from a table (for DKIM keys).

``dns_server`` runs a UDP server on 127.0.0.1 at a port the OS picks; tests put
records in ``server.records`` (name -> TXT strings) and resolve through
``server.dnsfunc``, which asks it over real DNS packets (dnspython), in the
shape dkimpy's ``dnsfunc`` takes. Unknown names answer NXDOMAIN.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import dns.message
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest


class LoopbackDns:
    def __init__(self) -> None:
        self.records: dict[str, list[bytes]] = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.questions: list[str] = []
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            if self._stopping:
                return
            query = dns.message.from_wire(data)
            response = dns.message.make_response(query)
            question = query.question[0]
            name = question.name.to_text().lower()
            self.questions.append(name)
            strings = self.records.get(name)
            if strings is None or question.rdtype != dns.rdatatype.TXT:
                response.set_rcode(dns.rcode.NXDOMAIN)
            else:
                # A TXT record's strings are at most 255 octets each.
                chunks = [s[i : i + 255] for s in strings for i in range(0, len(s), 255)]
                text = " ".join('"' + c.decode("ascii") + '"' for c in chunks)
                response.answer.append(
                    dns.rrset.from_text(question.name, 60, dns.rdataclass.IN, "TXT", text)
                )
            self.sock.sendto(response.to_wire(), peer)

    def dnsfunc(self, name: bytes, timeout: int = 5) -> bytes:
        """The TXT record of ``name`` (its strings joined), or b"" when there is none."""
        query = dns.message.make_query(name.decode("ascii"), dns.rdatatype.TXT)
        response = dns.query.udp(query, "127.0.0.1", port=self.port, timeout=timeout)
        for rrset in response.answer:
            for rdata in rrset:
                return b"".join(rdata.strings)
        return b""

    def close(self) -> None:
        """Stop the server thread (a blocked recvfrom wakes only for a datagram), then close."""
        self._stopping = True
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as waker:
            waker.sendto(b"", ("127.0.0.1", self.port))
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def dns_server() -> Iterator[LoopbackDns]:
    server = LoopbackDns()
    yield server
    server.close()


__all__ = ["LoopbackDns", "dns_server"]
