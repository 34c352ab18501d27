"""A stand-in Hugging Face Hub on 127.0.0.1: the part of the HTTP API that ``huggingface_hub`` uses to fetch a
model repository (``model_info``, the file tree, ``resolve`` with HEAD then GET), serving folders as ``ORG/NAME``.

What the real Hub answers is reproduced where ``huggingface_hub`` reads it: the commit of a revision
(``X-Repo-Commit``), an ``ETag`` per file, and the ``X-Error-Code`` of its refusals (``RepoNotFound`` for an unknown
or private repository, ``GatedRepo``, ``RevisionNotFound``, ``EntryNotFound``). Every request is recorded, so a test
can say that nothing was asked (offline) or that a summary fetched no weights. It stops by itself after a minute.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Repo:
    folder: Path
    commit: str
    token: str | None = None  # private: only this bearer token opens it
    gated: bool = False  # its files are refused (GatedRepo) unless the token is given

    def files(self) -> list[str]:
        return sorted(p.name for p in self.folder.iterdir() if p.is_file())


class StandInHub:
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                      with_body: bool = True) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                if with_body:
                    self.wfile.write(body)

            def _refuse(self, status: int, code: str, with_body: bool = True) -> None:
                body = json.dumps({"error": code}).encode()
                self._send(status, body, {"X-Error-Code": code, "Content-Type": "application/json"}, with_body)

            def _handle(self, with_body: bool) -> None:
                path = urllib.parse.urlsplit(self.path).path
                hub.requests.append((self.command, path))
                parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
                api = parts[:2] == ["api", "models"]
                repo_id = "/".join(parts[2:4] if api else parts[0:2])
                repo = hub.repos.get(repo_id)
                token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                if repo is None or (repo.token and token != repo.token and not repo.gated):
                    return self._refuse(401 if repo else 404, "RepoNotFound", with_body)
                rest = parts[4:] if api else parts[2:]
                if len(rest) < 2:
                    return self._refuse(404, "EntryNotFound", with_body)
                revision = rest[1]
                if revision not in ("main", repo.commit):
                    return self._refuse(404, "RevisionNotFound", with_body)
                if api and rest[0] == "revision":
                    siblings = [{"rfilename": f} for f in repo.files()]
                    body = json.dumps({"id": repo_id, "modelId": repo_id, "sha": repo.commit, "siblings": siblings,
                                       "private": bool(repo.token), "gated": "auto" if repo.gated else False})
                    return self._send(200, body.encode(), {"Content-Type": "application/json"}, with_body)
                if api and rest[0] == "tree":
                    tree = [{"type": "file", "path": f, "size": (repo.folder / f).stat().st_size,
                             "oid": hashlib.sha1((repo.folder / f).read_bytes()).hexdigest()} for f in repo.files()]
                    return self._send(200, json.dumps(tree).encode(), {"Content-Type": "application/json"}, with_body)
                if api or rest[0] != "resolve":
                    return self._refuse(404, "EntryNotFound", with_body)
                if repo.gated and token != repo.token:
                    return self._refuse(403, "GatedRepo", with_body)
                name = "/".join(rest[2:])
                if name not in repo.files():
                    return self._refuse(404, "EntryNotFound", with_body)
                data = (repo.folder / name).read_bytes()
                self._send(200, data, {"X-Repo-Commit": repo.commit,
                                       "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}, with_body)

            def do_HEAD(self):  # noqa: N802 (http.server's naming)
                self._handle(with_body=False)

            def do_GET(self):  # noqa: N802
                self._handle(with_body=True)

            def log_message(self, *args):  # keep the test output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.watchdog = threading.Timer(120, self.httpd.shutdown)  # stops by itself whatever happens

    def add(self, repo_id: str, folder: Path, *, token: str | None = None, gated: bool = False) -> Repo:
        """Serve ``folder`` as ``repo_id``; its commit is a hash of its files (a changed folder is a new commit)."""
        digest = hashlib.sha1()
        for f in sorted(p for p in folder.iterdir() if p.is_file()):
            digest.update(f.name.encode() + hashlib.sha1(f.read_bytes()).digest())
        self.repos[repo_id] = Repo(folder, digest.hexdigest(), token, gated)
        return self.repos[repo_id]

    def fetched(self, name: str) -> bool:
        """Whether a file of that name was downloaded (GET of a resolve URL)."""
        return any(m == "GET" and "/resolve/" in p and p.endswith("/" + name) for m, p in self.requests)

    def __enter__(self) -> "StandInHub":
        self.thread.start()
        self.watchdog.start()
        return self

    def __exit__(self, *exc) -> None:
        self.watchdog.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()
