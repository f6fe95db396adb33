"""A webhook receiver that checks every request with the Standard Webhooks reference library
(the `standardwebhooks` package from PyPI), independently of hookgate's own code.

Usage: sw_receiver.py <secret>. Prints `listening <port>`, then one JSON line per request:
{"path", "id", "ok", "error"}. Answers 204 when the signature verifies, 400 otherwise.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from standardwebhooks.webhooks import Webhook

SECRET = sys.argv[1]


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        result = {"path": self.path, "id": headers.get("webhook-id"), "ok": False, "error": None}
        try:
            Webhook(SECRET).verify(body, headers)
            result["ok"] = True
        except Exception as e:  # noqa: BLE001 - report every failure to the test
            result["error"] = f"{type(e).__name__}: {e}"
        print(json.dumps(result), flush=True)
        self.send_response(204 if result["ok"] else 400)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Handler)
print(f"listening {server.server_address[1]}", flush=True)
server.serve_forever()
