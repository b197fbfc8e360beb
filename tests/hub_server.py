"""A stand-in for the Hugging Face Hub's HTTP API on loopback: the endpoints huggingface_hub
calls to create a dataset repository and a branch, commit files (regular uploads), and list and
download them (snapshot_download). Enough for `hinttune push` and `hf://` with no network;
repositories live in memory."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse


class Hub:
    def __init__(self) -> None:
        self.repos: dict[str, dict] = {}  # repo id -> {"private", "branches": {name: {path: bytes}}, "commits"}
        self.requests: list[tuple[str, str]] = []


def _handler(hub: Hub, base: list[str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _reply(self, code: int, body: object = None, headers: dict | None = None, raw: bytes | None = None) -> None:
            data = raw if raw is not None else json.dumps(body if body is not None else {}).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _repo(self, repo_id: str) -> dict | None:
            return hub.repos.get(repo_id)

        def do_POST(self) -> None:  # noqa: N802
            path = unquote(urlparse(self.path).path)
            hub.requests.append(("POST", path))
            body = self._body()
            if path == "/api/repos/create":
                data = json.loads(body)
                repo_id = f"{data['organization']}/{data['name']}" if data.get("organization") else data["name"]
                if repo_id in hub.repos:
                    return self._reply(409, {"error": "You already created this dataset repo",
                                             "url": f"{base[0]}/datasets/{repo_id}"})
                hub.repos[repo_id] = {"private": data.get("visibility", "private" if data.get("private") else "public") != "public", "branches": {"main": {}}, "commits": 0,
                                      "type": data.get("type")}
                return self._reply(200, {"url": f"{base[0]}/datasets/{repo_id}", "name": repo_id})
            if path == "/api/validate-yaml":
                return self._reply(200, {"errors": [], "warnings": []})
            match = re.match(r"^/api/datasets/(.+?)/(preupload|commit|branch)/(.+)$", path)
            if not match:
                return self._reply(404, {"error": f"no route {path}"})
            repo_id, action, revision = match.groups()
            repo = self._repo(repo_id)
            if repo is None:
                return self._reply(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
            if action == "branch":
                repo["branches"].setdefault(revision, dict(repo["branches"]["main"]))
                return self._reply(200, {})
            if action == "preupload":
                files = json.loads(body)["files"]
                return self._reply(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                   for f in files]})
            branch = repo["branches"].setdefault(revision, {})
            for line in body.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    branch[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                elif item["key"] != "header":
                    return self._reply(400, {"error": f"unsupported commit operation {item['key']}"})
            repo["commits"] += 1
            oid = hashlib.sha1(f"{repo_id}{repo['commits']}".encode()).hexdigest()
            return self._reply(200, {"commitUrl": f"{base[0]}/datasets/{repo_id}/commit/{oid}", "commitOid": oid,
                                     "pullRequestUrl": None})

        def _branch(self, repo_id: str, revision: str) -> dict | None:
            """A branch's files, by its name or the commit sha the revision endpoint gave."""
            repo = self._repo(repo_id)
            for branch_name, files in (repo or {}).get("branches", {}).items():
                if revision in (branch_name, hashlib.sha1(f"{repo_id}@{branch_name}".encode()).hexdigest()):
                    return files
            return None

        def do_GET(self) -> None:  # noqa: N802
            path = unquote(urlparse(self.path).path)
            hub.requests.append((self.command, path))
            match = re.match(r"^/api/datasets/(.+?)/revision/(.+)$", path)
            if match:
                repo_id, revision = match.groups()
                files = self._branch(repo_id, revision)
                if files is None:
                    return self._reply(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
                sha = hashlib.sha1(f"{repo_id}@{revision}".encode()).hexdigest()
                return self._reply(200, {"id": repo_id, "sha": sha, "private": self._repo(repo_id)["private"],
                                         "siblings": [{"rfilename": name} for name in sorted(files)]})
            match = re.match(r"^/api/datasets/(.+?)/tree/([^/]+)(?:/(.*))?$", path)
            if match:
                repo_id, revision, _ = match.groups()
                files = self._branch(repo_id, revision)
                if files is None:
                    return self._reply(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
                return self._reply(200, [{"type": "file", "path": name, "size": len(data),
                                          "oid": hashlib.sha1(data).hexdigest()} for name, data in sorted(files.items())])
            match = re.match(r"^/datasets/(.+?)/resolve/([^/]+)/(.+)$", path)
            if match:
                repo_id, revision, name = match.groups()
                branch = self._branch(repo_id, revision)
                if branch is None or name not in branch:
                    return self._reply(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
                data = branch[name]
                etag = hashlib.sha1(data).hexdigest()
                sha = hashlib.sha1(f"{repo_id}@{revision}".encode()).hexdigest() if len(revision) != 40 else revision
                return self._reply(200, raw=data, headers={"ETag": f'"{etag}"', "X-Repo-Commit": sha})
            return self._reply(404, {"error": f"no route {path}"})

        do_HEAD = do_GET

    return Handler


class HubServer:
    def __init__(self) -> None:
        self.hub = Hub()
        base: list[str] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.hub, base))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        base.append(self.url)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
