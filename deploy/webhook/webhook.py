"""A webhook sink for the compose demo: prints each Alertmanager notification it receives.

Alertmanager POSTs its webhook payload (version 4) here; one line per alert goes
to stdout, so `docker compose logs -f webhook` shows what would have paged
someone. Replace it with your chat or paging tool's webhook URL in
deploy/alertmanager/alertmanager.yml.

Standard library only: python webhook.py [[HOST:]PORT]   (default 8080, on all interfaces).
"""

from __future__ import annotations

import json
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def describe(payload: dict) -> list[str]:
    lines = []
    for alert in payload.get("alerts", []):
        labels = alert.get("labels", {})
        annotations = alert.get("annotations", {})
        where = ", ".join(f"{k}={labels[k]}" for k in ("account", "name", "chat_id") if labels.get(k))
        lines.append(
            f"[{alert.get('status', '?').upper()}] {labels.get('alertname', '?')}"
            f" severity={labels.get('severity', '-')} {where}:"
            f" {annotations.get('summary') or annotations.get('description') or ''}".rstrip()
        )
    return lines


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            payload = json.loads(body)
        except ValueError:
            self.send_error(400, "body is not JSON")
            return
        for line in describe(payload if isinstance(payload, dict) else {}):
            print(line, flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    host, _, port = (sys.argv[1] if len(sys.argv) > 1 else "8080").rpartition(":")
    server = ThreadingHTTPServer((host, int(port)), Handler)
    # As PID 1 in a container, SIGTERM does nothing unless handled.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"webhook sink listening on {host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
