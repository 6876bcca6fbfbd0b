"""`digest doctor`: is the sending setup one that mailbox providers accept?

Each check is a small function registered with :func:`check`; each returns
findings (ok / warn / error) that say what was found and, when it is not ok,
what to change. DNS goes through dnspython (a resolver can be given, e.g. one
pointing at a test server); the one-click check POSTs to the public site
through httpx (a transport can be given).

======================  ==============================================================
spf                     the From domain (and the return path's) publishes one SPF
                        record, and it covers the SMTP host where that resolves
dkim                    the DKIM selector's public key in DNS matches the private key
dmarc                   a DMARC record exists (the policy is shown)
bounce-mx               the return path's domain receives mail (MX)
one-click               ``base_url`` is https and the unsubscribe endpoint answers an
                        RFC 8058 one-click POST
alignment               the From domain aligns with the DKIM ``d=`` and the return path
======================  ==============================================================

Organizational domains come from the Public Suffix List
(:func:`digest.addresses.organizational_domain`, the one ``digest check`` uses):
``news.example.org`` -> ``example.org``, ``news.example.co.uk`` -> ``example.co.uk``.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.resolver
import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from digest.addresses import organizational_domain
from digest.config import Config
from digest.errors import ConfigError, DigestError
from digest.message import load_dkim_key
from digest.workspace import Workspace

OK, WARN, ERROR = "ok", "warn", "error"


@dataclass(frozen=True)
class Finding:
    level: str
    check: str
    message: str
    fix: str = ""

    def line(self) -> str:
        fix = f" -> {self.fix}" if self.fix else ""
        return f"{self.level:<5} {self.check:<10} {self.message}{fix}"


class Doctor:
    """What the checks share: the workspace, a resolver and an HTTP transport."""

    def __init__(
        self,
        ws: Workspace,
        resolver: dns.resolver.Resolver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.ws = ws
        self.config: Config = ws.config
        self.resolver = resolver or dns.resolver.Resolver()
        self.transport = transport

    @property
    def from_domain(self) -> str:
        return self.config.newsletter.domain.lower()

    @property
    def dkim_domain(self) -> str:
        return (self.config.dkim.domain or self.from_domain).lower()

    @property
    def return_path_domain(self) -> str:
        return (self.config.bounces.return_path_domain or self.from_domain).lower()

    def query(self, name: str, kind: str) -> list[Any]:
        """Answers for ``name``; none when it does not exist. A DNS failure is a DigestError."""
        try:
            return list(self.resolver.resolve(name, kind, lifetime=5))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
            return []
        except (dns.exception.Timeout, dns.exception.DNSException) as exc:
            raise DigestError(f"DNS lookup of {name} {kind} failed ({exc})") from None

    def txt(self, name: str) -> list[str]:
        return [
            b"".join(record.strings).decode("utf-8", "replace")
            for record in self.query(name, "TXT")
        ]

    def addresses(self, host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        found: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
        for kind in ("A", "AAAA"):
            found.extend(ipaddress.ip_address(r.to_text()) for r in self.query(host, kind))
        return found


Check = Callable[[Doctor], Iterator[Finding]]
CHECKS: list[tuple[str, Check]] = []


def check(name: str) -> Callable[[Check], Check]:
    def register(function: Check) -> Check:
        CHECKS.append((name, function))
        return function

    return register


def run_doctor(
    ws: Workspace,
    *,
    resolver: dns.resolver.Resolver | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[Finding]:
    """Every check's findings, in order; a check that cannot run says why (error)."""
    doctor = Doctor(ws, resolver, transport)
    findings: list[Finding] = []
    for name, function in CHECKS:
        try:
            findings.extend(function(doctor))
        except DigestError as exc:
            findings.append(Finding(ERROR, name, str(exc), "check the DNS server and try again"))
    return findings


# -- SPF ---------------------------------------------------------------------------------


def _spf_record(doctor: Doctor, domain: str) -> list[str]:
    return [t for t in doctor.txt(domain) if t.lower().startswith("v=spf1")]


def spf_covers(
    doctor: Doctor, domain: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address, depth: int = 0
) -> bool | None:
    """Whether ``domain``'s SPF passes ``ip``: True, False, or None when it cannot tell."""
    if depth > 10:
        return None
    records = _spf_record(doctor, domain)
    if len(records) != 1:
        return None
    redirect = ""
    for term in records[0].split()[1:]:
        qualifier = "+"
        if term[:1] in "+-~?":
            qualifier, term = term[0], term[1:]
        name, _, value = term.partition(":")
        if "=" in term and not value:
            key, _, target = term.partition("=")
            if key.lower() == "redirect":
                redirect = target
            continue
        name = name.lower()
        matched: bool | None = False
        if name in ("ip4", "ip6"):
            try:
                matched = ip in ipaddress.ip_network(value, strict=False)
            except ValueError:
                matched = False
        elif name.startswith("a"):
            host, _, cidr = (value or domain).partition("/")
            matched = _in_hosts(doctor, [host], ip, cidr) if name == "a" else False
        elif name.startswith("mx"):
            host, _, cidr = (value or domain).partition("/")
            hosts = [r.exchange.to_text().rstrip(".") for r in doctor.query(host, "MX")]
            matched = _in_hosts(doctor, hosts, ip, cidr) if name == "mx" else False
        elif name == "include":
            matched = spf_covers(doctor, value, ip, depth + 1)
        elif name == "all":
            return qualifier == "+"
        else:
            continue  # exists, ptr: not evaluated
        if matched:
            return qualifier == "+"
    if redirect:
        return spf_covers(doctor, redirect, ip, depth + 1)
    return False


def _in_hosts(
    doctor: Doctor,
    hosts: list[str],
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
    cidr: str,
) -> bool:
    for host in hosts:
        for found in doctor.addresses(host):
            prefix = int(cidr) if cidr.isdigit() else found.max_prefixlen
            if found.version == ip.version and ip in ipaddress.ip_network(
                f"{found}/{prefix}", strict=False
            ):
                return True
    return False


@check("spf")
def _spf(doctor: Doctor) -> Iterator[Finding]:
    domains = [doctor.from_domain]
    if doctor.return_path_domain != doctor.from_domain:
        domains.append(doctor.return_path_domain)
    smtp = doctor.config.sender.smtp if doctor.config.sender.kind == "smtp" else None
    for domain in domains:
        records = _spf_record(doctor, domain)
        if not records:
            yield Finding(
                ERROR,
                "spf",
                f"{domain} has no SPF record",
                f'publish TXT "v=spf1 include:<your provider> -all" at {domain}',
            )
            continue
        if len(records) > 1:
            yield Finding(
                ERROR, "spf", f"{domain} has {len(records)} SPF records", "merge them into one"
            )
            continue
        yield Finding(OK, "spf", f"{domain}: {records[0]}")
        if records[0].split()[-1] in ("+all", "all"):
            yield Finding(
                WARN, "spf", f"{domain}'s SPF ends in +all: anyone may send as it", "end it in -all"
            )
        if smtp is None or domain != doctor.return_path_domain:
            continue
        ips = doctor.addresses(smtp.host)
        if not ips:
            yield Finding(
                WARN, "spf", f"the SMTP host {smtp.host} does not resolve: SPF not checked for it"
            )
            continue
        for ip in ips:
            covered = spf_covers(doctor, domain, ip)
            if covered:
                yield Finding(OK, "spf", f"{domain}'s SPF covers the SMTP host {smtp.host} ({ip})")
            elif covered is False:
                yield Finding(
                    ERROR,
                    "spf",
                    f"{domain}'s SPF does not cover the SMTP host {smtp.host} ({ip})",
                    f"add ip{ip.version}:{ip} (or your provider's include:) to it",
                )


# -- DKIM --------------------------------------------------------------------------------


def public_key_text(private_pem: bytes) -> str:
    """The ``p=`` value a DKIM record must hold for this private key."""
    try:
        key = serialization.load_pem_private_key(private_pem, password=None)
    except (ValueError, TypeError):
        raise ConfigError("the DKIM private key is not a readable PEM key") from None
    public = key.public_key()
    if isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        raw = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    return base64.b64encode(raw).decode("ascii")


def _tags(record: str) -> dict[str, str]:
    tags = {}
    for part in record.split(";"):
        key, _, value = part.strip().partition("=")
        if key:
            tags[key.strip().lower()] = "".join(value.split())
    return tags


@check("dkim")
def _dkim(doctor: Doctor) -> Iterator[Finding]:
    settings = doctor.config.dkim
    if not settings.enabled:
        yield Finding(
            WARN,
            "dkim",
            "messages are not DKIM-signed",
            "set [dkim] selector and private_key_env (or private_key_file)",
        )
        return
    name = f"{settings.selector}._domainkey.{doctor.dkim_domain}"
    key = load_dkim_key(doctor.ws)
    if key is None:
        yield Finding(
            ERROR, "dkim", "the DKIM private key is not set", "set [dkim] private_key_env"
        )
        return
    expected = public_key_text(key)
    records = [t for t in doctor.txt(name) if "p=" in t]
    if not records:
        yield Finding(
            ERROR,
            "dkim",
            f"no DKIM key at {name}",
            f'publish TXT "v=DKIM1; k=rsa; p={expected[:24]}..." (the whole key) at {name}',
        )
        return
    published = _tags(records[0]).get("p", "")
    if not published:
        yield Finding(ERROR, "dkim", f"the key at {name} is revoked (empty p=)", "publish the key")
    elif published == expected:
        yield Finding(OK, "dkim", f"{name} holds the public half of the configured key")
    else:
        yield Finding(
            ERROR,
            "dkim",
            f"the key at {name} does not match the configured private key",
            "publish the public key of the key digest signs with, or use its selector",
        )


# -- DMARC -------------------------------------------------------------------------------


@check("dmarc")
def _dmarc(doctor: Doctor) -> Iterator[Finding]:
    domain = doctor.from_domain
    for name in dict.fromkeys((f"_dmarc.{domain}", f"_dmarc.{organizational_domain(domain)}")):
        records = [t for t in doctor.txt(name) if t.lower().startswith("v=dmarc1")]
        if records:
            policy = _tags(records[0]).get("p", "(none given)")
            level = WARN if policy.lower() == "none" else OK
            fix = "move to p=quarantine once reports look clean" if level == WARN else ""
            yield Finding(level, "dmarc", f"{name}: policy p={policy}", fix)
            return
    yield Finding(
        ERROR,
        "dmarc",
        f"no DMARC record for {domain}",
        f'publish TXT "v=DMARC1; p=none; rua=mailto:dmarc@{organizational_domain(domain)}" at '
        f"_dmarc.{domain}; Gmail and Yahoo require one from bulk senders",
    )


# -- bounce domain -------------------------------------------------------------------------


@check("bounce-mx")
def _bounce_mx(doctor: Doctor) -> Iterator[Finding]:
    if not doctor.config.bounces.return_path:
        yield Finding(
            WARN,
            "bounce-mx",
            "no [bounces] return_path: bounce reports go to the From address and name "
            "nobody for sure",
            'set return_path = "bounce+{token}@bounces.<your domain>" (docs/bounces.md)',
        )
        return
    domain = doctor.return_path_domain
    hosts = sorted(r.exchange.to_text().rstrip(".") for r in doctor.query(domain, "MX"))
    if hosts:
        yield Finding(OK, "bounce-mx", f"{domain} receives mail via {', '.join(hosts)}")
    else:
        yield Finding(
            ERROR,
            "bounce-mx",
            f"{domain} has no MX record: bounces cannot come back",
            f"publish an MX for {domain} pointing at the server that pipes to `digest bounces "
            "ingest` or holds the mailbox `digest bounces fetch` reads",
        )


# -- the one-click unsubscribe -------------------------------------------------------------


@check("one-click")
def _one_click(doctor: Doctor) -> Iterator[Finding]:
    base = doctor.config.newsletter.base_url.rstrip("/")
    if not base.startswith("https://"):
        yield Finding(
            ERROR,
            "one-click",
            f"base_url {base} is not https: Gmail and Yahoo require https unsubscribe links",
            "serve `digest serve` behind an HTTPS proxy and set base_url to https://",
        )
    tokens = doctor.ws.tokens()
    url = f"{base}/unsubscribe/{tokens.unsubscribe('doctor-probe')}"

    async def post() -> httpx.Response:
        async with httpx.AsyncClient(transport=doctor.transport, timeout=10) as client:
            return await client.post(
                url,
                content=b"List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )

    try:
        reply = asyncio.run(post())
    except httpx.HTTPError as exc:
        yield Finding(
            ERROR,
            "one-click",
            f"{base}/unsubscribe did not answer ({type(exc).__name__})",
            "start `digest serve` where base_url points",
        )
        return
    if 200 <= reply.status_code < 300:
        yield Finding(OK, "one-click", f"{base}/unsubscribe answers a one-click POST")
    elif reply.status_code == 400:
        yield Finding(
            ERROR,
            "one-click",
            f"{base}/unsubscribe refused a link signed here ({reply.status_code})",
            f"give `digest serve` the same {doctor.config.web.secret_key_env} as the sender",
        )
    else:
        yield Finding(
            ERROR,
            "one-click",
            f"{base}/unsubscribe answered {reply.status_code} to a one-click POST",
            "check the proxy in front of `digest serve` lets POST through",
        )


# -- alignment -----------------------------------------------------------------------------


@check("alignment")
def _alignment(doctor: Doctor) -> Iterator[Finding]:
    source = organizational_domain(doctor.from_domain)
    if doctor.config.dkim.enabled:
        if organizational_domain(doctor.dkim_domain) == source:
            yield Finding(OK, "alignment", f"DKIM d={doctor.dkim_domain} aligns with From")
        else:
            yield Finding(
                ERROR,
                "alignment",
                f"DKIM d={doctor.dkim_domain} does not align with From ({doctor.from_domain})",
                "sign with the From domain (or a subdomain of it)",
            )
    if organizational_domain(doctor.return_path_domain) == source:
        yield Finding(
            OK, "alignment", f"the return path domain {doctor.return_path_domain} aligns with From"
        )
    else:
        yield Finding(
            WARN,
            "alignment",
            f"the return path domain {doctor.return_path_domain} does not align with From "
            f"({doctor.from_domain}): SPF cannot pass DMARC, only DKIM can",
            "use a return path under the From domain",
        )


def resolver_for(nameserver: str | None) -> dns.resolver.Resolver | None:
    """A resolver asking ``HOST[:PORT]`` only, or None for the system's."""
    if not nameserver:
        return None
    host, _, port = (
        nameserver.rpartition(":") if nameserver.count(":") == 1 else (nameserver, "", "")
    )
    resolver = dns.resolver.Resolver(configure=False)
    try:
        resolver.nameservers = [host or nameserver]
        resolver.port = int(port) if port else 53
    except ValueError:
        raise ConfigError(
            f"--nameserver {nameserver!r} is not HOST[:PORT] with an IP address"
        ) from None
    return resolver
