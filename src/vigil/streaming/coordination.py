"""Who retrains when several consumers of one group share a stream: one lease-holder, the others follow.

N consumers of a group each see a share of the partitions. If each retrained on its own windows, the
group would publish N competing dynamic models and the service would answer from whichever was saved
last. Instead one consumer holds the group's *retrain lease*, a small file in the artifact store
(``<store>/<streams folder>/<group>.retrain-lease.json``): it alone saves dynamic models (the
starting copy and every retrain) through the artifact store; the others never retrain, and at the
start of each of their windows load the newest dynamic model the group published (the artifact
store's manifest says which: the entries saved with this group and topic in their ``extra``).

The lease is taken with an exclusive create (``O_CREAT | O_EXCL``), so two consumers racing for it
cannot both win; it is renewed at each heartbeat (every few seconds) and expires ``ttl_s`` after the
last renewal. A consumer that finds it expired (its holder died without releasing it) takes it over
by renaming it away first: only one rename of the same file succeeds, so only one taker goes on to
create the new lease. A holder that stops releases it, and the next consumer to ask takes it.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> a, b = RetrainLease(folder, "g", "a"), RetrainLease(folder, "g", "b")
    >>> a.acquire(), b.acquire(), b.holder()
    (True, False, 'a')
    >>> a.release(); b.acquire()
    True
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

DEFAULT_TTL_S = 30.0


class RetrainLease:
    def __init__(self, folder: Path, group: str, holder: str, ttl_s: float = DEFAULT_TTL_S):
        self.path = Path(folder) / f"{group}.retrain-lease.json"
        self.me = holder
        self.ttl_s = float(ttl_s)

    def _read(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def holder(self) -> str | None:
        record = self._read()
        if record is None or float(record.get("expires_at", 0)) < time.time():
            return None
        return record.get("holder")

    def _create(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as handle:
            json.dump(self._record(), handle)
        return True

    def _record(self) -> dict:
        return {"holder": self.me, "expires_at": time.time() + self.ttl_s, "pid": os.getpid()}

    def acquire(self) -> bool:
        """True when this consumer holds the lease now (taken, renewed, or taken over once expired)."""
        if self._create():
            return True
        record = self._read()
        if record is None:  # being replaced by another consumer this very moment: not ours
            return False
        expired = float(record.get("expires_at", 0)) < time.time()
        if record.get("holder") == self.me and not expired:
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self._record()))
            os.replace(tmp, self.path)  # renewal: only the holder writes over its own lease
            return True
        if not expired:
            return False
        stale = self.path.with_name(f"{self.path.name}.stale.{self.me}.{os.getpid()}")
        try:
            os.rename(self.path, stale)  # of several takers, one rename succeeds
        except FileNotFoundError:
            return False
        stale.unlink(missing_ok=True)
        return self._create()

    def release(self) -> None:
        if self.holder() == self.me:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
