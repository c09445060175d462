#!/usr/bin/python3
"""A tiny HTTP file server for birdplane's download tests (standard library only, no network).

Usage: http_server.py FOLDER [--log FILE] [--lifetime SECONDS]

Binds 127.0.0.1 on a port the OS picks, prints the port on the first line of stdout, and serves
the files of FOLDER. It answers `Range: bytes=N-` with 206 and Content-Range (416 when N is at or
past the end), like a real server that supports resuming. The first path segment picks a mode:

  /<file>            normal
  /truncate/<file>   sends the full Content-Length header, then closes after half the body
  /norange/<file>    ignores Range and always answers 200 with the whole file

Every request is appended to --log as "GET <path> range=<Range header or ->" so tests can check
that a resume really asked for the missing bytes. The server stops by itself after --lifetime
seconds (default 60) so that it never lingers if a test dies without stopping it.
"""

import argparse
import http.server
import os
import re
import sys
import threading

MODES = ("truncate", "norange")


class Handler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so closing early in "truncate" mode is unambiguous.
    protocol_version = "HTTP/1.0"
    folder = "."
    log_path = None

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass  # keep the test output clean; requests go to --log instead

    def _log_request(self):
        if self.log_path:
            with open(self.log_path, "a", encoding="utf-8") as log:
                log.write(f"{self.command} {self.path} range={self.headers.get('Range', '-')}\n")

    def _resolve(self):
        parts = [p for p in self.path.split("?", 1)[0].split("/") if p]
        mode = "normal"
        if parts and parts[0] in MODES:
            mode, parts = parts[0], parts[1:]
        if not parts or any(p in (".", "..") for p in parts):
            return mode, None
        path = os.path.join(self.folder, *parts)
        return mode, path if os.path.isfile(path) else None

    def do_HEAD(self):
        self._serve(send_body=False)

    def do_GET(self):
        self._serve(send_body=True)

    def _serve(self, send_body):
        self._log_request()
        mode, path = self._resolve()
        if path is None:
            self.send_error(404, "no such file")
            return
        with open(path, "rb") as f:
            data = f.read()
        start, status = 0, 200
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if match and mode != "norange":
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "none" if mode == "norange" else "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if not send_body:
            return
        if mode == "truncate":
            body = body[: len(body) // 2]
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--log", default=None)
    parser.add_argument("--lifetime", type=float, default=60.0)
    args = parser.parse_args()

    Handler.folder = os.path.abspath(args.folder)
    Handler.log_path = args.log
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    timer = threading.Timer(args.lifetime, server.shutdown)
    timer.daemon = True
    timer.start()
    try:
        server.serve_forever(poll_interval=0.05)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
