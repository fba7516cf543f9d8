"""``/admin/reload`` fanned out to every replica of a deployment (``vigil admin reload``).

Behind a load balancer a request reaches one replica, and ``/admin/reload`` reloads only the
server that gets it, so the fan-out posts to each replica itself, one at a time, and reports each
answer. The same as ``scripts/reload_replicas.sh``, for where vigil is installed (docs/deployment.md).

    >>> [answer.line() for answer in reload_replicas(["http://10.0.0.5:8080"], token="...")]  # doctest: +SKIP
    ['ok      http://10.0.0.5:8080/admin/reload  HTTP 200  {"errors":{},"models":{...},"ok":true,"pid":41}']
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass

NO_MODEL = "no trained model"  # the registry's error for a task with no artifact at all


@dataclass
class ReplicaAnswer:
    """One replica's answer to ``POST /admin/reload``.

    >>> ReplicaAnswer("http://10.0.0.5:8080/admin/reload", "200", '{"ok":false,"errors":{"ember":"no trained model"}}').reloaded
    True
    >>> ReplicaAnswer("http://10.0.0.6:8080/admin/reload", "401", '{"error":"missing or wrong bearer token"}').line()
    'FAILED  http://10.0.0.6:8080/admin/reload  HTTP 401  {"error":"missing or wrong bearer token"}'
    """

    url: str
    status: str  # the HTTP status, or "unreachable (reason)"
    body: str  # the replica's answer as it sent it (one line)

    @property
    def reloaded(self) -> bool:
        """200 and ``ok``, or the only errors are tasks with no trained model at all (a deployment
        serving some of the tasks); a refused artifact or manifest is a failure."""
        if self.status != "200":
            return False
        try:
            answer = json.loads(self.body)
        except ValueError:
            return False
        errors = answer.get("errors") or {}
        return answer.get("ok") is True or all(error == NO_MODEL for error in errors.values())

    def line(self) -> str:
        return f"{'ok     ' if self.reloaded else 'FAILED '} {self.url}  HTTP {self.status}  {self.body}"


def reload_url(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/admin/reload") else url + "/admin/reload"


def addresses_of(host_port: str) -> list[str]:
    """``http://ADDRESS:PORT`` for every IPv4 address ``HOST`` resolves to (a compose service name
    or a Kubernetes headless service resolves to every replica)."""
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--all-of needs HOST:PORT, not {host_port!r}")
    try:
        infos = socket.getaddrinfo(host, int(port), socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ValueError(f"--all-of: {host} resolves to no address ({exc})") from None
    return [f"http://{address}:{port}" for address in sorted({info[4][0] for info in infos})]


def reload_replicas(urls: list[str], token: str | None = None, timeout: float = 60.0) -> list[ReplicaAnswer]:
    """POST ``{}`` to each replica's ``/admin/reload`` in turn (each answers once its own workers
    have the new models); one :class:`ReplicaAnswer` per URL, in order."""
    import requests

    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    answers = []
    with requests.Session() as session:
        for url in map(reload_url, urls):
            try:
                response = session.post(url, data=b"{}", headers=headers, timeout=timeout)
            except requests.RequestException as exc:
                answers.append(ReplicaAnswer(url, f"unreachable ({type(exc).__name__}: {exc})"[:300], ""))
                continue
            answers.append(ReplicaAnswer(url, str(response.status_code), response.text.replace("\n", "")))
    return answers
