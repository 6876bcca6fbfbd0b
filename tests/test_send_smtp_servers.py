"""The SMTP sender against servers that answer in unusual but legal (or common) ways.

Each test runs a small scripted SMTP server on loopback (:class:`Server`, in the
test's own event loop): it reads real commands from a real socket and answers
like a plain server, except where the test says otherwise (:func:`at`). It
records what it read and which messages it took, so each test can say what a
user needs to know: each message's result (accepted, transient, permanent or
unknown), what the server received, and that the send finished.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage

import pytest

from digest.config import Smtp
from digest.errors import SendError
from digest.send.sender import ACCEPTED, PERMANENT, TRANSIENT, UNKNOWN, OutgoingMessage, Result
from digest.send.smtp import SmtpSender

# What a server may do instead of replying: hang up without a word, reset the
# connection (a TCP RST), or say nothing until the client gives up.
CLOSE = "<close>"
RESET = "<reset>"
SILENT = "<silent>"


@dataclass
class Turn:
    """A command as the server read it, and where it came in the conversation."""

    connection: int  # 1 for the first connection the server accepted
    verb: str  # EHLO, MAIL, RCPT, DATA, RSET, ...; END for a message's end-of-data
    argument: str  # the address for MAIL and RCPT, else the rest of the line
    mail: int  # how many MAIL commands the server has read, this one included
    rcpts: list[str]  # the recipients it accepted in this transaction so far


Answer = Callable[[Turn], str | None]


def at(verbs: str, reply: str, **where: object) -> Answer:
    """``reply`` to the commands named in ``verbs`` (space-separated) where the turn's
    fields are as ``where`` says (``mail=2``, ``connection=1``, ``argument=...``)."""

    def answer(turn: Turn) -> str | None:
        if turn.verb in verbs.split() and all(getattr(turn, k) == v for k, v in where.items()):
            return reply
        return None

    return answer


def first(*answers: Answer) -> Answer:
    """The first of ``answers`` that has a reply."""
    return lambda turn: next((r for a in answers if (r := a(turn)) is not None), None)


@dataclass
class Server:
    """A plain SMTP server on 127.0.0.1 whose replies a test can replace.

    ``answer(turn)`` returns the reply to write ("\\n" between the lines of a
    multi-line reply), CLOSE, RESET or SILENT, or None for the plain reply. After a
    421 the server closes the connection, as RFC 5321 says (unless
    ``closes_after_421`` is false). ``cut`` splits each reply's bytes into separate
    writes, and ``pause`` is awaited between them.
    """

    answer: Answer | None = None
    greeting: str = "220 test.example ESMTP"
    pipelining: bool = True
    closes_after_421: bool = True
    cut: Callable[[bytes], list[bytes]] | None = None
    pause: Callable[[], Awaitable[None]] | None = None
    between: Callable[[Server], Awaitable[None]] | None = None  # what it does between sends
    # What the server read and did:
    commands: list[tuple[int, str]] = field(default_factory=list)  # (connection, line)
    ahead: list[str] = field(default_factory=list)  # commands already there when it replied
    data: list[tuple[list[str], bytes]] = field(default_factory=list)  # (recipients, message)
    delivered: list[str] = field(default_factory=list)  # recipients of messages taken (250)
    connections: int = 0
    mails: int = 0
    port: int = 0

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: list[asyncio.Task[None]] = []
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()
        for writer in self._writers:
            writer.transport.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def sessions(self, connection: int) -> list[str]:
        """The commands of one connection, in order (a message's bytes as "<message>")."""
        return [line for number, line in self.commands if number == connection]

    async def hang_up(self, reply: str) -> None:
        """Write ``reply`` on every open connection and close it (an idle timeout)."""
        for writer in self._writers:
            if not writer.is_closing():
                await self._write(writer, reply)
                writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.append(task)
        self._writers.append(writer)
        self.connections += 1
        number = self.connections
        mail_from: str | None = None
        rcpts: list[str] = []
        try:
            if not await self._reply(reader, writer, self.greeting):
                return
            while True:
                already = bool(reader._buffer)  # type: ignore[attr-defined]
                line = await reader.readline()
                if not line:
                    return
                text = line.decode().rstrip("\r\n")
                self.commands.append((number, text))
                verb, _, argument = text.partition(" ")
                verb = verb.upper()
                if already:  # the client sent it before the reply to the command before
                    self.ahead.append(verb)
                if verb in ("MAIL", "RCPT"):
                    argument = argument.partition("<")[2].partition(">")[0]
                if verb == "MAIL":
                    self.mails += 1
                turn = Turn(number, verb, argument, self.mails, list(rcpts))
                reply = self._answer(turn, mail_from)
                if not await self._reply(reader, writer, reply) or verb == "QUIT":
                    return
                code = reply[:3]
                if verb == "MAIL" and code == "250":
                    mail_from = argument
                elif verb == "RCPT" and code in ("250", "251"):
                    rcpts.append(argument)
                elif verb == "RSET":
                    mail_from, rcpts = None, []
                elif verb == "DATA" and code == "354":
                    self.data.append((list(rcpts), await self._message(reader)))
                    self.commands.append((number, "<message>"))
                    end = Turn(number, "END", "", self.mails, list(rcpts))
                    reply = self._answer(end, mail_from)
                    if reply.startswith("250"):
                        self.delivered.extend(rcpts)
                    if not await self._reply(reader, writer, reply):
                        return
                    mail_from, rcpts = None, []
                # A refused DATA keeps the transaction: the client must say RSET.
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.transport.abort()

    def _answer(self, turn: Turn, mail_from: str | None) -> str:
        reply = self.answer(turn) if self.answer is not None else None
        return reply if reply is not None else self._plain(turn, mail_from)

    def _plain(self, turn: Turn, mail_from: str | None) -> str:
        """What an ordinary server answers."""
        verb = turn.verb
        if verb == "EHLO":
            lines = ["test.example", *(["PIPELINING"] if self.pipelining else []), "8BITMIME"]
            return "\n".join(f"250-{line}" for line in lines[:-1]) + f"\n250 {lines[-1]}"
        if verb == "HELO":
            return "250 test.example"
        if verb == "MAIL":
            return "503 5.5.1 nested MAIL command" if mail_from else "250 2.1.0 OK"
        if verb == "RCPT":
            return "250 2.1.5 OK" if mail_from else "503 5.5.1 need MAIL command"
        if verb == "DATA":
            if not mail_from:
                return "503 5.5.1 need MAIL command"
            return "354 go ahead" if turn.rcpts else "554 5.5.1 no valid recipients"
        if verb == "END":
            return f"250 2.0.0 queued as Q{turn.mail}" if turn.rcpts else "554 5.5.1 no recipients"
        if verb in ("RSET", "NOOP"):
            return "250 2.0.0 OK"
        if verb == "QUIT":
            return "221 2.0.0 bye"
        return "500 5.5.2 command not recognised"

    async def _reply(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, reply: str
    ) -> bool:
        """Answer (or do what the test said instead); False when the connection is over."""
        if reply == CLOSE:
            return False
        if reply == RESET:  # the close that follows sends a TCP RST
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if reply == SILENT:
            await reader.read()  # until the client hangs up
            return False
        await self._write(writer, reply)
        return not (reply.startswith("421") and self.closes_after_421)

    async def _write(self, writer: asyncio.StreamWriter, reply: str) -> None:
        wire = reply.replace("\n", "\r\n").encode() + b"\r\n"
        for i, piece in enumerate(self.cut(wire) if self.cut else [wire]):
            if i and self.pause is not None:
                await self.pause()
            writer.write(piece)
            await writer.drain()

    @staticmethod
    async def _message(reader: asyncio.StreamReader) -> bytes:
        lines = []
        while True:
            line = await reader.readuntil(b"\r\n")
            if line == b".\r\n":
                return b"".join(lines)
            lines.append(line[1:] if line.startswith(b".") else line)


def reader(n: int) -> str:
    return f"reader{n}@example.net"


def message(n: int) -> OutgoingMessage:
    mail = EmailMessage()
    mail["From"] = "Brief <brief@example.com>"
    mail["To"] = reader(n)
    mail["Subject"] = f"Issue for {n}"
    mail.set_content(f"Hello reader {n}\n")
    return OutgoingMessage(
        n, reader(n), f"k-{n}", wire=lambda: mail.as_bytes(policy=mail.policy.clone(linesep="\r\n"))
    )


def send(server: Server, *batches: int, timeout: float = 5) -> list[Result]:
    """Send messages 0, 1, ... to ``server`` with one sender, ``batches`` messages at a
    time (one connection); every send must end, and asyncio must have nothing to say."""

    async def go() -> list[Result]:
        unhandled: list[str] = []
        asyncio.get_running_loop().set_exception_handler(
            lambda loop, context: unhandled.append(context["message"])
        )
        results: list[Result] = []
        async with server:
            smtp = Smtp(host="127.0.0.1", port=server.port, security="none", timeout=timeout)
            async with SmtpSender(smtp, "brief@example.com", connections=1) as sender:
                for i, count in enumerate(batches):
                    if i and server.between is not None:
                        await server.between(server)
                    messages = [message(n) for n in range(len(results), len(results) + count)]
                    results += await asyncio.wait_for(sender.send(messages), 10)
        gc.collect()
        assert unhandled == []  # asyncio would print them on the user's terminal
        return results

    return asyncio.run(go())


def states(results: list[Result]) -> list[str]:
    return [r.state for r in results]


async def turns() -> None:
    """A few turns of the loop: what the server wrote reaches the client before the
    server writes more (loopback delivers at once)."""
    for _ in range(3):
        await asyncio.sleep(0)


def test_a_plain_server_gets_pipelined_envelopes_and_takes_every_message() -> None:
    server = Server()
    results = send(server, 3)
    assert states(results) == [ACCEPTED] * 3
    assert server.delivered == [reader(0), reader(1), reader(2)]
    assert server.ahead == ["RCPT", "DATA"] + ["MAIL", "RCPT", "DATA"] * 2


# -- a refused recipient in a pipelined envelope -----------------------------------------


def test_a_refused_recipient_and_554_to_data_send_no_body_and_the_next_message_goes() -> None:
    """MAIL, RCPT and DATA went together; RCPT 550, DATA 554 "no valid recipients": the
    message is failed for good, its body never goes, the next message goes on the same
    connection."""
    server = Server(at("RCPT", "550 5.1.1 no such user", argument=reader(1)))
    results = send(server, 3)
    assert states(results) == [ACCEPTED, PERMANENT, ACCEPTED]
    assert results[1].reason == "550 5.1.1 no such user"
    assert [rcpts for rcpts, _ in server.data] == [[reader(0)], [reader(2)]]
    assert server.delivered == [reader(0), reader(2)]
    assert server.connections == 1


@pytest.mark.parametrize("to_the_dot", ["554 5.5.1 no recipients", "250 2.0.0 OK, nothing"])
def test_a_refused_recipient_and_354_to_data_get_the_end_of_data_alone(to_the_dot: str) -> None:
    """Some servers answer DATA 354 though every RCPT was refused; the client then sends
    the end-of-data alone (RFC 2920 3.1). Whatever the server says to it, the message is
    the recipient's refusal, and the replies to the next messages stay in step."""
    server = Server(
        first(
            at("RCPT", "550 5.1.1 no such user", argument=reader(1)),
            at("DATA", "354 go ahead"),
            at("END", to_the_dot, rcpts=[]),
        )
    )
    results = send(server, 4)
    assert states(results) == [ACCEPTED, PERMANENT, ACCEPTED, ACCEPTED]
    assert results[1].reason == "550 5.1.1 no such user"
    assert server.data[1] == ([], b"")  # the end-of-data, nothing of the message
    assert server.delivered == [reader(0), reader(2), reader(3)]
    assert [r.provider_id for r in results if r.ok] == [
        "2.0.0 queued as Q1",
        "2.0.0 queued as Q3",
        "2.0.0 queued as Q4",
    ]
    assert server.connections == 1


# -- MAIL refused for now ----------------------------------------------------------------


@pytest.mark.parametrize("refusal", ["451 4.3.0 try again later", "452 4.3.1 out of space"])
def test_mail_refused_for_now_defers_the_message_and_the_connection_goes_on(refusal: str) -> None:
    server = Server(at("MAIL", refusal, mail=2))
    results = send(server, 3)
    assert states(results) == [ACCEPTED, TRANSIENT, ACCEPTED]
    assert results[1].reason == refusal
    assert server.delivered == [reader(0), reader(2)]
    # RCPT and DATA were refused for want of a MAIL; the transaction is reset.
    assert server.sessions(1)[5:] == [
        "MAIL FROM:<brief@example.com>",
        f"RCPT TO:<{reader(1)}>",
        "DATA",
        "RSET",
        "MAIL FROM:<brief@example.com>",
        f"RCPT TO:<{reader(2)}>",
        "DATA",
        "<message>",
        "QUIT",
    ]


# -- multi-line replies, and replies in pieces --------------------------------------------


def bytewise(wire: bytes) -> list[bytes]:
    return [wire[i : i + 1] for i in range(len(wire))]


def between_cr_and_lf(wire: bytes) -> list[bytes]:
    *lines, last = wire.split(b"\r")
    return [line + b"\r" for line in lines] + [last]


def mid_line(wire: bytes) -> list[bytes]:
    """Each line cut after two digits of its code, and after the code's separator."""
    pieces = []
    for line in wire.splitlines(keepends=True):
        pieces += [line[:2], line[2:4], line[4:]]
    return [p for p in pieces if p]


MULTI_LINE = first(
    at("RCPT", "550-5.1.1 no such user\n550-here or\n550 5.1.1 anywhere", argument=reader(1)),
    at("MAIL", "250-2.1.0 sender\n250-looks fine\n250 2.1.0 OK"),
    at("RCPT", "250-2.1.5 recipient\n250 2.1.5 OK"),
    at("DATA", "354-end with <CRLF>.<CRLF>\n354 go ahead"),
    at("END", "250-2.0.0 thank you\n250-for the message\n250 2.0.0 queued"),
)


@pytest.mark.parametrize("cut", [None, bytewise, between_cr_and_lf, mid_line])
@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-at-a-time"])
def test_multi_line_replies_in_pieces_keep_the_replies_in_step(
    cut: Callable[[bytes], list[bytes]] | None, pipelining: bool
) -> None:
    """Continuation lines (``250-``) belong to one reply, and a reply may come in any
    number of pieces: a line cut in its middle, or between CR and LF. A multi-line
    refusal in the middle does not shift the replies of the messages after it."""
    server = Server(MULTI_LINE, pipelining=pipelining, cut=cut, pause=turns)
    results = send(server, 4)
    assert states(results) == [ACCEPTED, PERMANENT, ACCEPTED, ACCEPTED]
    assert results[0].provider_id == "2.0.0 thank you\nfor the message\n2.0.0 queued"
    assert results[1].reason == "550 5.1.1 no such user\nhere or\n5.1.1 anywhere"
    assert server.delivered == [reader(0), reader(2), reader(3)]
    assert server.connections == 1
    assert bool(server.ahead) == pipelining


# -- the connection ends in the middle of a pipelined batch -------------------------------


@pytest.mark.parametrize(
    ("how", "closes_after_421"),
    [
        pytest.param(CLOSE, True, id="hangs-up"),
        pytest.param(RESET, True, id="resets"),
        pytest.param("421 4.3.2 shutting down", True, id="421"),
        # RFC 5321 has a 421 end the connection; this server goes on answering 503.
        pytest.param("421 4.3.2 shutting down", False, id="421-then-503"),
    ],
)
@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-at-a-time"])
def test_the_connection_ends_after_a_message_is_taken(
    how: str, closes_after_421: bool, pipelining: bool
) -> None:
    """The 250 for message 1's end-of-data comes, then the server hangs up (or says 421)
    where message 2's MAIL is: 1 is sent; nothing of 2 was delivered, so it goes again on
    a new connection; every reader gets one copy."""
    server = Server(
        at("MAIL", how, connection=1, mail=3),
        pipelining=pipelining,
        closes_after_421=closes_after_421,
    )
    results = send(server, 4)
    assert states(results) == [ACCEPTED] * 4
    assert server.delivered == [reader(n) for n in range(4)]
    assert server.connections == 2
    assert server.sessions(2)[1:3] == ["MAIL FROM:<brief@example.com>", f"RCPT TO:<{reader(2)}>"]


def test_421_to_the_end_of_data_defers_that_message_and_the_next_goes_on() -> None:
    """421 instead of 250 for message 1: it was not taken (tried again later); message 2,
    whose envelope followed it, goes on a new connection."""
    server = Server(at("END", "421 4.3.2 shutting down", mail=2))
    results = send(server, 4)
    assert states(results) == [ACCEPTED, TRANSIENT, ACCEPTED, ACCEPTED]
    assert results[1].reason == "421 4.3.2 shutting down"
    assert server.delivered == [reader(0), reader(2), reader(3)]
    assert server.connections == 2


@pytest.mark.parametrize("noticed", [True, False], ids=["noticed", "not-yet-noticed"])
def test_a_connection_the_server_closed_while_idle_is_replaced(noticed: bool) -> None:
    """Between two sends (a deferred row's wait) the server ends the idle connection
    with a 421: the next send opens a new one, whether or not the close was seen
    before its first write."""

    async def idle_timeout(server: Server) -> None:
        await server.hang_up("421 4.4.2 idle too long")
        if noticed:
            await turns()

    server = Server()
    server.between = idle_timeout
    results = send(server, 2, 2)
    assert states(results) == [ACCEPTED] * 4
    assert server.delivered == [reader(n) for n in range(4)]
    assert server.connections == 2


# -- one message refused at its end-of-data -----------------------------------------------


@pytest.mark.parametrize(
    ("refusal", "state"),
    [("554 5.7.1 message refused as spam", PERMANENT), ("451 4.7.1 try later", TRANSIENT)],
)
def test_one_message_refused_at_its_end_of_data(refusal: str, state: str) -> None:
    server = Server(at("END", refusal, rcpts=[reader(1)]))
    results = send(server, 4)
    assert states(results) == [ACCEPTED, state, ACCEPTED, ACCEPTED]
    assert results[1].reason == refusal
    assert server.delivered == [reader(0), reader(2), reader(3)]
    assert server.connections == 1


# -- slow servers ------------------------------------------------------------------------

TIMEOUT = 0.25
SLOW = "250-2.0.0 taking\n250-my time\n250-over this reply\n250 2.0.0 queued, slowly"


def test_a_reply_that_trickles_in_for_longer_than_the_timeout_is_waited_for() -> None:
    """[sender.smtp] timeout is how long the server may say nothing, not how long a reply
    may take: a reply that comes a byte at a time is read to its end, once."""
    pause = 1.5 * TIMEOUT / len(SLOW)  # a byte's wait; the reply takes 1.5 timeouts

    async def a_byte_at_a_time() -> None:
        await asyncio.sleep(pause)

    def cut(wire: bytes) -> list[bytes]:
        return bytewise(wire) if b"slowly" in wire else [wire]

    server = Server(at("END", SLOW, mail=1), cut=cut, pause=a_byte_at_a_time)
    results = send(server, 2, timeout=TIMEOUT)
    assert states(results) == [ACCEPTED, ACCEPTED]
    assert results[0].provider_id.endswith("queued, slowly")
    assert server.delivered == [reader(0), reader(1)]
    assert server.connections == 1


def test_no_reply_to_the_end_of_data_makes_that_message_unknown_and_the_send_goes_on() -> None:
    """The server read message 1 and then said nothing: after [sender.smtp] timeout the
    message is unknown (it may have been taken) and not sent again by itself; message 2,
    whose envelope followed it, goes on a new connection."""
    server = Server(at("END", SILENT, connection=1, mail=2))
    results = send(server, 4, timeout=TIMEOUT)
    assert states(results) == [ACCEPTED, UNKNOWN, ACCEPTED, ACCEPTED]
    assert "no reply in 0.25 seconds" in results[1].reason
    assert [rcpts for rcpts, _ in server.data].count([reader(1)]) == 1
    assert server.delivered == [reader(0), reader(2), reader(3)]
    assert server.connections == 2


def test_no_reply_to_the_next_envelope_sends_it_again_on_a_new_connection() -> None:
    server = Server(at("MAIL", SILENT, connection=1, mail=2))
    results = send(server, 3, timeout=TIMEOUT)
    assert states(results) == [ACCEPTED] * 3
    assert server.delivered == [reader(0), reader(1), reader(2)]
    assert server.connections == 2


# -- greetings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ehlo",
    [
        "250-test.example\n250-pipelining\n250 8BITMIME",
        "250-test.example\n250-PIPELINING   \n250 8BITMIME",
        "250-test.example\n250-8BITMIME\n250 Pipelining",
    ],
    ids=["lower-case", "trailing-spaces", "last-line"],
)
def test_pipelining_however_the_server_spells_it(ehlo: str) -> None:
    server = Server(at("EHLO", ehlo))
    results = send(server, 3)
    assert states(results) == [ACCEPTED] * 3
    assert "RCPT" in server.ahead and "DATA" in server.ahead


@pytest.mark.parametrize("refusal", ["502 5.5.1 EHLO not implemented", "500 5.5.2 what?"])
def test_a_server_that_refuses_ehlo_gets_helo_and_one_command_at_a_time(refusal: str) -> None:
    server = Server(at("EHLO", refusal))
    results = send(server, 3)
    assert states(results) == [ACCEPTED] * 3
    assert [line.split()[0] for line in server.sessions(1)[:2]] == ["EHLO", "HELO"]
    assert server.ahead == []
    assert server.delivered == [reader(0), reader(1), reader(2)]


@pytest.mark.parametrize(
    ("greeting", "answer"),
    [
        ("554 5.7.1 no SMTP service for you", None),
        ("220 test.example", at("EHLO HELO", "554 5.7.1 no SMTP service for you")),
    ],
    ids=["greeting", "ehlo-and-helo"],
)
def test_a_server_that_will_not_talk_stops_the_send_with_its_reply(
    greeting: str, answer: Answer | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("digest.send.smtp.CONNECT_TRIES", 1)
    server = Server(answer, greeting=greeting)
    with pytest.raises(SendError) as stopped:
        send(server, 2)
    assert str(stopped.value) == (
        f"127.0.0.1:{server.port}: cannot connect (554 5.7.1 no SMTP service for you); "
        "check [sender.smtp] host and port, then run the same command again to resume"
    )
    assert server.delivered == [] and server.connections == 1
