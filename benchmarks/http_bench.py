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
import multiprocessing
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_provider(port: int) -> None:
    import json

    import uvicorn

    async def app(scope, receive, send):  # noqa: ANN001, ANN202
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            event = await receive()
            body += event.get("body", b"")
            more = event.get("more_body", False)
        count = body.count(b'"MessageStream"')  # one per message; no need to parse 10 MB
        reply = json.dumps(
            [{"ErrorCode": 0, "Message": "OK", "MessageID": f"m{i}"} for i in range(count)]
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": reply})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=100_000)
    args = parser.parse_args()
    port = free_port()
    provider = multiprocessing.Process(target=run_provider, args=(port,), daemon=True)
    provider.start()
    time.sleep(1.5)
    import os

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
            text = text.replace('kind = "outbox"', 'kind = "http"')
            text = text.replace('token_env = "DIGEST_API_TOKEN"', 'token_env = "BENCH_TOKEN"')
            text = text.replace('base_url = ""', f'base_url = "http://127.0.0.1:{port}"')
            (root / "digest.toml").write_text(text)
            ws = open_workspace(root)
            issue = sample_issue()
            issue.status = "ready"
            write_issue(ws, issue)
            with open_store(ws) as store:
                insert_subscribers(store, args.recipients)
            report = run_send(ws, "2026-12-04")
            assert report.counts["sent"] == args.recipients, report.counts
            print(f"recipients: {args.recipients}, sender: {report.sender}")
            print(
                f"digest run_send with the ledger (SQLite): "
                f"{args.recipients / report.elapsed:,.0f} recipients/s ({report.elapsed:.1f}s, "
                "including freeze and render; target >= 10,000/s)"
            )
    finally:
        provider.kill()


if __name__ == "__main__":
    main()
