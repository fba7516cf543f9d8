"""Attacks on the data-only unpickler and the Alectio bucket (hardening issue, items 1 and 7).

Each test builds the hostile file an attacker would put in the bucket and asserts that nothing runs,
nothing large is allocated and the loop fails naming the file.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from vigil.active_learning import processes
from vigil.active_learning.pipeline import AlectioPipeline
from vigil.active_learning.storage import LocalBucketStore, OutsideRoot, read_indices, write_json, write_pickle
from vigil.active_learning.synthetic import write_synthetic_vectorized
from vigil.safe_pickle import UnsafePickle, loads_data

PAYLOAD = {
    "experiment_id": "e1",
    "project_id": "p1",
    "cur_loop": 0,
    "user_id": "u",
    "bucket_name": "b1",
    "type": "Classification",
}


def _unicode(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw  # SHORT_BINUNICODE


def stack_global(module: str, name: str) -> bytes:
    return _unicode(module) + _unicode(name) + b"\x93"  # STACK_GLOBAL


def call1(callable_ops: bytes, argument_ops: bytes) -> bytes:
    return callable_ops + argument_ops + b"\x85R"  # TUPLE1 REDUCE


def proto4(body: bytes) -> bytes:
    return b"\x80\x04" + body + b"."


def marker_command(marker: Path) -> str:
    return f"__import__('os').system('touch {marker}')"


def bypass_shapes(marker: Path) -> dict[str, bytes]:
    """The shapes of known escapes from 'allow a module' unpicklers, each trying to create ``marker``."""
    command = marker_command(marker)
    eval_via_dtypes = call1(stack_global("numpy.dtypes", "__builtins__.get"), _unicode("eval"))
    return {
        # the reported exploit: numpy.dtypes allowed as a module, protocol 4 dotted name -> eval
        "numpy.dtypes dotted name": proto4(call1(eval_via_dtypes, _unicode(command))),
        "dotted name from an allowed class": proto4(
            call1(call1(stack_global("builtins", "set.__init__.__globals__.get"), _unicode("eval")), _unicode(command))
        ),
        "builtins.eval": proto4(call1(stack_global("builtins", "eval"), _unicode(command))),
        "builtins.getattr": proto4(stack_global("builtins", "getattr")),
        "os.system (protocol 0 GLOBAL)": b"cos\nsystem\n(V" + f"touch {marker}".encode() + b"\ntR.",
        "numpy.dtypes class": proto4(stack_global("numpy.dtypes", "Int64DType")),
        "copyreg reconstructor": proto4(stack_global("copyreg", "_reconstructor")),
        "numpy.testing runstring": proto4(stack_global("numpy.testing._private.utils", "runstring")),
    }


class ReduceExploit:
    """What pickle.dumps writes for an object whose __reduce_ex__ names a callable."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce_ex__(self, protocol):
        return (os.system, (f"touch {self.marker}",))


def test_known_bypass_shapes_are_refused_before_anything_runs(tmp_path):
    marker = tmp_path / "pwned"
    for shape, data in {**bypass_shapes(marker), "__reduce_ex__": pickle.dumps(ReduceExploit(marker))}.items():
        with pytest.raises(UnsafePickle, match="refusing to unpickle"):
            loads_data(data, max_items=1000)
        assert not marker.exists(), shape


def test_the_reported_exploit_really_runs_code_under_a_module_wildcard(tmp_path):
    """The attack file is live: a plain Unpickler that allows module numpy.dtypes runs it."""
    import io

    marker = tmp_path / "pwned"

    class ModuleWildcard(pickle.Unpickler):
        def find_class(self, module, name):
            if module == "numpy.dtypes":
                return super().find_class(module, name)
            raise pickle.UnpicklingError(name)

    ModuleWildcard(io.BytesIO(bypass_shapes(marker)["numpy.dtypes dotted name"])).load()
    assert marker.exists()


def test_object_dtype_arrays_are_refused():
    for protocol in (2, 4, 5):
        with pytest.raises(UnsafePickle, match="object"):
            loads_data(pickle.dumps(np.array([1, "a"], dtype=object), protocol=protocol), max_items=10)


def test_reconstruct_with_a_huge_shape_is_refused_without_allocating():
    reconstruct = stack_global("numpy._core.multiarray", "_reconstruct")
    ndarray = stack_global("numpy", "ndarray")
    shape = b"\x8a\x05" + (10**12).to_bytes(5, "little") + b"\x85"  # LONG1 10**12, TUPLE1
    data = proto4(reconstruct + ndarray + shape + b"C\x01b" + b"\x87R")  # SHORT_BINBYTES b'b', TUPLE3 REDUCE
    with pytest.raises(UnsafePickle, match="_reconstruct"):
        loads_data(data, max_items=10)


def test_a_build_opcode_cannot_rewire_an_allowed_global():
    # range global, then {"__defaults__": ...} as slot state: BUILD would setattr on the guard
    data = proto4(stack_global("builtins", "range") + b"N}" + _unicode("_call") + b"N" + b"s\x86b")
    with pytest.raises(UnsafePickle):
        loads_data(data, max_items=10)


def test_a_33_byte_range_cannot_allocate_gigabytes():
    bomb = pickle.dumps(range(0, 50_000_000), protocol=4)
    assert len(bomb) < 50
    tracemalloc.start()
    try:
        with pytest.raises(UnsafePickle, match="exceeds the limit of 1000"):
            loads_data(bomb, max_items=1000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_lists_over_the_budget_are_refused_and_oversized_files_are_not_read():
    with pytest.raises(UnsafePickle, match="list of 1001 items"):
        loads_data(pickle.dumps(list(range(1001))), max_items=1000)
    with pytest.raises(UnsafePickle, match="bytes exceeds"):
        loads_data(b"\x80\x04" + b"\x95" + b"\x00" * (70 * 1000 + 70_000), max_items=1000)


def test_plain_data_round_trips():
    values = [
        [1, 2, 3],
        (1, "a"),
        {1: {"softmax": [0.2, 0.8]}},
        {1, 2},
        range(5),
        np.arange(4),
        np.int64(3),
        np.float32(0.5),
        np.array([[1.5, 2.5]]),
        "text",
        None,
        True,
    ]
    for value in values:
        for protocol in (0, 2, 4, 5):
            loaded = loads_data(pickle.dumps(value, protocol=protocol), max_items=100)
            assert type(loaded) is type(value) and repr(loaded) == repr(value)


# ----------------------------------------------------------------------------- the bucket


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_synthetic_vectorized(tmp_path_factory.mktemp("synthetic"), train_rows=300, test_rows=100)


@pytest.fixture
def platform(data_dir, tmp_path):
    args = processes.normalise_args(
        {"DATA_DIR": str(data_dir), "EXPT_DIR": str(tmp_path / "expt"), "TRAIN_SIZE": 200, "TEST_SIZE": 80}
    )
    store = LocalBucketStore(tmp_path / "bucket")
    write_json(store, "b1", "p1/meta.json", {"0": "Benign", "1": "Malicious", "train_size": 200})
    return AlectioPipeline(args, store), store


def test_the_reported_exploit_fails_the_loop_and_runs_nothing(platform, tmp_path):
    pipeline, store = platform
    marker = tmp_path / "pwned"
    store.write_bytes("b1", "p1/e1/selected_indices_0.pkl", bypass_shapes(marker)["numpy.dtypes dotted name"])
    job = pipeline.start_loop(PAYLOAD, background=False)["job"]
    assert job["status"] == "failed" and "refusing to unpickle numpy.dtypes.__builtins__.get" in job["error"]["reason"]
    assert job["error"]["detail"]["field"] == "selected_indices_0.pkl"
    assert not marker.exists()


def test_an_index_file_larger_than_the_pool_fails_the_loop(platform):
    pipeline, store = platform
    store.write_bytes("b1", "p1/e1/selected_indices_0.pkl", pickle.dumps(range(0, 50_000_000), protocol=4))
    job = pipeline.start_loop(PAYLOAD, background=False)["job"]
    assert job["status"] == "failed" and "exceeds the limit of 200" in job["error"]["reason"]


@pytest.mark.parametrize("ext", [".json", ".npy", ".pkl"])
def test_indices_may_come_as_json_npy_or_pickle(platform, ext):
    pipeline, store = platform
    indices = list(range(0, 120, 2))
    key = f"p1/e1/selected_indices_0{ext}"
    if ext == ".json":
        store.write_bytes("b1", key, json.dumps(indices).encode())
    elif ext == ".npy":
        import io

        buffer = io.BytesIO()
        np.save(buffer, np.array(indices, dtype=np.int32), allow_pickle=False)
        store.write_bytes("b1", key, buffer.getvalue())
    else:
        write_pickle(store, "b1", key, indices)
    job = pipeline.start_loop(PAYLOAD, background=False)["job"]
    assert job["status"] == "succeeded" and job["result"]["labelled"] == 60


def test_npy_headers_are_checked_before_the_data_is_read(tmp_path):
    store = LocalBucketStore(tmp_path)
    header = "{'descr': '<i8', 'fortran_order': False, 'shape': (10000000000,), }".ljust(117) + "\n"
    store.write_bytes("b", "huge.npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
    with pytest.raises(ValueError, match="exceed the pool size 100"):
        read_indices(store, "b", "huge.npy", max_items=100)
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }".ljust(117) + "\n"
    store.write_bytes("b", "obj.npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
    with pytest.raises(ValueError, match="must hold integers"):
        read_indices(store, "b", "obj.npy", max_items=100)


def test_pickles_we_write_hold_plain_python_values(tmp_path):
    store = LocalBucketStore(tmp_path)
    write_pickle(store, "b", "x.pkl", {"predictions": np.array([0, 1]), "n": np.int64(2), 3: np.float32(0.5)})
    raw = (tmp_path / "b" / "x.pkl").read_bytes()
    assert b"numpy" not in raw
    assert pickle.loads(raw) == {"predictions": [0, 1], "n": 2, 3: 0.5}


def _refusal(pipeline) -> str:
    """The reason a loop is refused: at once (403) or as the job's failure."""
    try:
        job = pipeline.start_loop(PAYLOAD, background=False)["job"]
    except OutsideRoot as exc:
        assert exc.status == 403
        return exc.error
    assert job["status"] == "failed"
    return job["error"]["reason"]


@pytest.mark.parametrize("link", ["project", "experiment", "file"])
def test_symlinks_out_of_the_bucket_are_refused(platform, tmp_path, link):
    pipeline, store = platform
    outside = tmp_path / "outside"
    (outside / "e1").mkdir(parents=True)
    write_json(LocalBucketStore(tmp_path), "outside", "p1/meta.json", {"train_size": 200})
    (outside / "e1" / "selected_indices_0.pkl").write_bytes(pickle.dumps(list(range(60))))
    bucket = store.root / "b1"
    if link == "project":
        (bucket / "p1" / "meta.json").unlink()
        (bucket / "p1").rmdir()
        (bucket / "p1").symlink_to(outside)
        (outside / "meta.json").write_text(json.dumps({"train_size": 200}))
    elif link == "experiment":
        (bucket / "p1" / "e1").symlink_to(outside / "e1")
    else:
        (bucket / "p1" / "e1").mkdir()
        (bucket / "p1" / "e1" / "selected_indices_0.pkl").symlink_to(outside / "e1" / "selected_indices_0.pkl")
    assert "outside the bucket root" in _refusal(pipeline)
    assert sorted(p.name for p in (outside / "e1").iterdir()) == ["selected_indices_0.pkl"]  # nothing written there


def test_an_experiment_dir_that_is_a_symlink_out_of_expt_dir_is_refused(data_dir, tmp_path):
    expt = tmp_path / "expt"
    expt.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (expt / "p1").symlink_to(tmp_path / "elsewhere")
    args = processes.normalise_args(
        {"DATA_DIR": str(data_dir), "EXPT_DIR": str(expt), "TRAIN_SIZE": 200, "TEST_SIZE": 80}
    )
    store = LocalBucketStore(tmp_path / "bucket")
    write_json(store, "b1", "p1/meta.json", {"train_size": 200})
    write_pickle(store, "b1", "p1/e1/selected_indices_0.pkl", list(range(60)))
    assert "outside the experiment folder" in _refusal(AlectioPipeline(args, store))
    assert not any((tmp_path / "elsewhere").iterdir())


def test_a_pickle_planted_as_a_checkpoint_is_refused_and_runs_nothing(data_dir, tmp_path):
    import joblib

    class Exploit:
        def __reduce__(self):
            return (Path(tmp_path / "pwned").touch, ())

    args = processes.normalise_args(
        {"DATA_DIR": str(data_dir), "EXPT_DIR": str(tmp_path / "expt"), "TRAIN_SIZE": 200, "TEST_SIZE": 80}
    )
    (tmp_path / "expt").mkdir()
    joblib.dump(Exploit(), tmp_path / "expt" / "ckpt_0.pkl")
    with pytest.raises(processes.UnprocessableInput, match="checkpoint ckpt_0.pkl refused"):
        processes.test(args, ckpt_file="ckpt_0.pkl")
    assert not (tmp_path / "pwned").exists()
