"""HTTP send rate: 100,000 recipients to a loopback mock provider with a batch endpoint.

    python benchmarks/http_bench.py [--recipients 100000]

The mock provider is a real HTTP server on 127.0.0.1 (uvicorn, in its own
process) that answers Postmark's batch endpoint: a JSON array in, one result
per message out. `run_send` sends the issue through the HTTP sender
(provider = "postmark", 500 messages per request) with the deliveries ledger
on SQLite. Target: >= 10,000 recipients/s.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def count_messages(body: bytes, parse: bool) -> int:
    """How many messages a Postmark batch body holds.

    By default a cheap scan, so the mock server does not take the CPU the client
    is measured on: every message has a ``"MessageStream": `` member, and inside
    a JSON string a quote is always escaped (``\\"``), so those bytes occur only
    as a member name. ``--parse`` parses each body for real instead (orjson when
    installed, else json), to check the bodies are valid JSON.
    """
    if not parse:
        if not (body.startswith(b"[{") and body.endswith(b"}]")):
            raise ValueError("not a JSON array of objects")
        return body.count(b'"MessageStream": ')
    try:
        import orjson

        data = orjson.loads(body)
    except ImportError:
        data = json.loads(body)
    if not isinstance(data, list) or not all("MessageStream" in m for m in data):
        raise ValueError("not a batch of messages")
    return len(data)


def run_provider(port: int, stats: Any, parse: bool) -> None:
    import resource

    import uvicorn

    async def app(scope, receive, send):  # noqa: ANN001, ANN202
        if scope["type"] != "http":
            return
        chunks = []
        more = True
        while more:
            event = await receive()
            chunks.append(event.get("body", b""))
            more = event.get("more_body", False)
        body = b"".join(chunks)  # the whole body, read (a += would copy 10 MB quadratically)
        status, reply = 200, b""
        try:
            count = count_messages(body, parse)
        except ValueError:
            status, count = 422, 0
            reply = b'{"ErrorCode": 402, "Message": "Received invalid JSON input."}'
        if status == 200:
            reply = json.dumps(
                [
                    {"ErrorCode": 0, "To": "", "Message": "OK", "MessageID": f"m{i}"}
                    for i in range(count)
                ]
            ).encode()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        stats[0] += count
        stats[1] = usage.ru_utime + usage.ru_stime
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": reply})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument(
        "--connections", type=int, default=4, help="requests in flight ([sender] connections)"
    )
    parser.add_argument(
        "--parse", action="store_true", help="the mock server parses every body (slower)"
    )
    args = parser.parse_args()
    port = free_port()
    stats = multiprocessing.Array("d", 2)  # messages counted, server CPU seconds
    provider = multiprocessing.Process(
        target=run_provider, args=(port, stats, args.parse), daemon=True
    )
    provider.start()
    time.sleep(1.5)

    from _render_fixtures import sample_issue, write_issue
    from insert_subscribers import insert_subscribers

    from digest.send.engine import run_send
    from digest.store import open_store
    from digest.workspace import init_workspace, open_workspace

    os.environ["BENCH_TOKEN"] = "bench"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "ws"
            init_workspace(root)
            text = (root / "digest.toml").read_text()
            text = text.replace('postal_address = ""', 'postal_address = "1 Press Lane"')
            # A real-looking sender and policy: `digest check` refuses the placeholders.
            text = text.replace("brief@example.com", "brief@weekly-brief.news")
            text = text.replace(
                "https://newsletter.example.com/privacy", "https://weekly-brief.news/privacy"
            )
            text = text.replace('kind = "outbox"', 'kind = "http"')
            text = text.replace("connections = 4 ", f"connections = {args.connections} ", 1)
            text = text.replace('token_env = "DIGEST_API_TOKEN"', 'token_env = "BENCH_TOKEN"')
            text = text.replace('base_url = ""', f'base_url = "http://127.0.0.1:{port}"')
            (root / "digest.toml").write_text(text)
            ws = open_workspace(root)
            assert ws.config.sender.connections == args.connections
            issue = sample_issue()
            issue.status = "ready"
            write_issue(ws, issue)
            with open_store(ws) as store:
                insert_subscribers(store, args.recipients)
            load_before = os.getloadavg()[0]
            cpu_before = time.process_time()
            report = run_send(ws, "2026-12-04")
            client_cpu = time.process_time() - cpu_before
            assert report.counts["sent"] == args.recipients, report.counts
            assert stats[0] == args.recipients, (stats[0], args.recipients)
            n = args.recipients
            print(
                f"recipients: {n}, sender: {report.sender}, {report.batch_size} per request, "
                f"{args.connections} requests in flight; {os.cpu_count()} cores, load average "
                f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
            )
            print(
                f"digest run_send with the ledger (SQLite): {n / report.elapsed:,.0f} "
                f"recipients/s wall clock ({report.elapsed:.2f}s including render, check and "
                f"freeze; target >= 10,000/s)"
            )
            print(
                f"  sending phase alone: {n / report.send_seconds:,.0f} recipients/s "
                f"({report.send_seconds:.2f}s: claim, build, POST, record)"
            )
            print(
                f"  CPU: client {client_cpu:.2f}s ({client_cpu / n * 1e6:.0f} us/recipient), "
                f"mock server {stats[1]:.2f}s ({stats[1] / n * 1e6:.0f} us/recipient)"
            )
    finally:
        provider.kill()


if __name__ == "__main__":
    main()
