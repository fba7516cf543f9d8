"""vigil.kernel_cache: compiled numba kernels kept on disk between processes, read back only through
a verified HMAC. Each case runs a real kernel in fresh processes (what a CLI run, a test worker or a
gunicorn worker is) and asks numba's own counters whether it compiled or loaded."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vigil.kernel_cache import MAGIC, sign, verified

KERNEL = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from numba import njit
    from vigil.kernel_cache import cached, holds

    @cached
    @njit(cache=False, nogil=True)
    def total(values):
        out = 0.0
        for value in values:
            out += value * 2.0
        return out

    held = holds(total)
    answer = total(np.arange(10.0))
    print(json.dumps({"answer": answer, "held": held, "hits": sum(total.stats.cache_hits.values()),
                      "misses": sum(total.stats.cache_misses.values())}))
    """
)


@pytest.fixture()
def probe(tmp_path):
    """Run the probe kernel in a fresh process with the cache in tmp_path; its JSON line and stderr."""
    (tmp_path / "probe_kernel.py").write_text(KERNEL)
    environment = {
        **{name: value for name, value in os.environ.items() if not name.startswith("VIGIL_")},
        "VIGIL_KERNEL_CACHE_DIR": str(tmp_path / "kernels"),
        "VIGIL_STATE_DIR": str(tmp_path / "state"),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path]),
    }

    def run(**env: str) -> tuple[dict, str]:
        done = subprocess.run(
            [sys.executable, "-c", "import probe_kernel"],
            cwd=tmp_path,
            env={**environment, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr

    return run


def cache_files(tmp_path: Path, suffix: str) -> list[Path]:
    return sorted((tmp_path / "kernels").rglob(f"*{suffix}"))


def test_the_next_process_loads_what_the_first_compiled(probe, tmp_path):
    first, _ = probe()
    second, _ = probe()
    assert first == {"answer": 90.0, "held": False, "hits": 0, "misses": 1}
    assert second == {"answer": 90.0, "held": True, "hits": 1, "misses": 0}
    key = (tmp_path / "state" / "kernel-cache.key").stat()
    assert key.st_mode & 0o077 == 0  # the key is readable by its owner only
    for path in cache_files(tmp_path, ".nbi") + cache_files(tmp_path, ".nbc"):
        assert path.read_bytes().startswith(MAGIC)


@pytest.mark.parametrize("suffix", [".nbc", ".nbi"])
def test_a_tampered_file_is_not_read_and_is_compiled_again(probe, tmp_path, suffix):
    probe()
    (path,) = cache_files(tmp_path, suffix)
    content = bytearray(path.read_bytes())
    content[-5] ^= 0x01  # one bit of the pickled payload
    path.write_bytes(bytes(content))
    again, stderr = probe()
    assert again == {"answer": 90.0, "held": suffix == ".nbc", "hits": 0, "misses": 1}
    if suffix == ".nbc":  # an index that does not verify is an empty cache, said once: no warning needed
        assert "not signed with this machine's key" in stderr
    assert probe()[0]["hits"] == 1  # written again, signed


def test_files_signed_with_another_key_are_a_miss(probe, tmp_path):
    probe()
    assert probe(VIGIL_MODEL_KEY="the deployment's secret")[0]["misses"] == 1  # another key: refused
    assert probe(VIGIL_MODEL_KEY="the deployment's secret")[0]["hits"] == 1
    assert probe(VIGIL_MODEL_KEY="another secret")[0]["misses"] == 1


def test_a_planted_pickle_is_never_unpickled(probe, tmp_path):
    """What numba itself writes (a bare pickle) or an attacker plants in its place: refused unread."""
    probe()
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    for path in cache_files(tmp_path, ".nbi") + cache_files(tmp_path, ".nbc"):
        path.write_bytes(pickle.dumps("0.68.1") + pickle.dumps(Payload()))
    result, _ = probe()
    assert result == {"answer": 90.0, "held": False, "hits": 0, "misses": 1}
    assert not marker.exists()


def test_off_means_compiled_in_each_process_and_nothing_written(probe, tmp_path):
    assert probe(VIGIL_KERNEL_CACHE_DIR="off")[0]["misses"] == 1
    assert probe(VIGIL_KERNEL_CACHE_DIR="off")[0]["misses"] == 1
    assert not (tmp_path / "kernels").exists() and not (tmp_path / "state").exists()


def test_a_signed_file_under_another_name_is_a_miss(probe, tmp_path):
    probe()
    (index,) = cache_files(tmp_path, ".nbi")
    (data,) = cache_files(tmp_path, ".nbc")
    index.write_bytes(data.read_bytes())  # signed with this key, but for another file
    result, stderr = probe()
    assert result == {"answer": 90.0, "held": False, "hits": 0, "misses": 1}
    assert "not signed with this machine's key" in stderr


def test_signed_content_verifies_only_whole_with_its_key_and_context():
    key, other = b"k" * 32, b"o" * 32
    content = sign(key, b"payload", b"folder/name.nbc")
    assert verified(key, content, b"folder/name.nbc") == b"payload"
    assert verified(key, content, b"folder/other.nbc") is None and verified(key, content) is None
    content = sign(key, b"payload")
    assert verified(key, content) == b"payload"
    assert verified(other, content) is None
    assert verified(key, content[:-1]) is None and verified(key, content[: len(MAGIC) + 5]) is None
    assert verified(key, b"payload") is None  # no tag at all


def test_processes_racing_for_the_first_key_all_get_the_same_whole_key(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from vigil.kernel_cache import _new_key

    path = tmp_path / "state" / "kernel-cache.key"
    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(lambda _: _new_key(path), range(32)))
    assert len(set(keys)) == 1 and len(keys[0]) == 32 and path.read_bytes() == keys[0]
    assert sorted(p.name for p in path.parent.iterdir()) == ["kernel-cache.key"]  # no temporary file left
