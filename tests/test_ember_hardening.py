"""Hardening issue 11, items 5 and 6: memory bombs and `vigil ember extract` batches, as attacks.

Real files only: the bombs are built from data/ember/pe/t32.exe, LIEF is the real one, memory is
measured in the extraction child itself (``ru_maxrss`` growth while it extracts the file).
"""

from __future__ import annotations

import io
import json
import os
import resource
import shutil
import signal
import struct
from pathlib import Path

import pytest

from vigil.cli import main
from vigil.tasks.ember.features import FeatureExtractor, parse_pe
from vigil.tasks.ember.pe_header import read_section_table, section_table_refusal
from vigil.tasks.ember.task import extract_files
from vigil.tasks.ember.workers import ExtractionWorker, WorkerFailure, WorkerPool, extract_bytes, extract_file

DATA = Path(__file__).resolve().parents[1] / "data" / "ember"
T32 = DATA / "pe" / "t32.exe"
MB = 1 << 20
pytestmark = pytest.mark.filterwarnings("ignore:.*is not a valid:RuntimeWarning")


def section_bomb(size: int = MB, sections: int = 1000) -> bytes:
    """t32.exe's headers with ``sections`` section headers that each cover the whole file."""
    base = T32.read_bytes()
    e_lfanew = struct.unpack_from("<I", base, 0x3C)[0]
    table = e_lfanew + 24 + struct.unpack_from("<H", base, e_lfanew + 20)[0]
    content = bytearray(size)
    content[:table] = base[:table]
    struct.pack_into("<H", content, e_lfanew + 6, sections)
    for i in range(sections):  # name, VirtualSize, VirtualAddress, SizeOfRawData, PointerToRawData, ...
        struct.pack_into(
            "<8sIIIIIIHHI",
            content,
            table + 40 * i,
            b".b%d" % i,
            size,
            0x1000 * (i + 1),
            size,
            0,
            0,
            0,
            0,
            0,
            0x60000020,
        )
    return bytes(content)


# -- jobs the extraction children run (module level, so a child can import them) ----------------
def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measured_extraction(content: bytes) -> tuple[dict, str | None, int]:
    """(raw record, note, peak RSS growth in bytes) of the real extraction, in the child."""
    before = _maxrss_bytes()
    raw, note = FeatureExtractor(2).raw_features_and_note(content)
    return raw, note, _maxrss_bytes() - before


def lief_without_the_guard(content: bytes) -> int:
    """What happened before the fix: the file straight to LIEF. Returns the sections LIEF kept."""
    binary = parse_pe(content)
    return len(binary.sections) if binary is not None else -1


def extract_or_die(job):
    """``extract_file``, except that files named die-* kill their process (once, for die-once-*)."""
    path = Path(job[0])
    if path.name.startswith("hang-"):
        signal.pause()  # until killed
    if path.name.startswith("die-always"):
        os.kill(os.getpid(), signal.SIGKILL)
    if path.name.startswith("die-once") and not path.with_suffix(".died").exists():
        path.with_suffix(".died").touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return extract_file(job)


# -- item 5: memory bombs -----------------------------------------------------------------------
def test_section_table_bomb_is_refused_before_lief_with_bounded_memory():
    bomb = section_bomb()
    table = read_section_table(bomb)
    assert (table.declared, table.present, table.raw_bytes) == (1000, 1000, 1000 * MB)
    assert "1000 section headers cover 1048576000 bytes" in section_table_refusal(bomb)
    pool = WorkerPool(measured_extraction)
    try:
        raw, note, growth = pool.run(bomb)
        # Before: LIEF held the 1,000 sections, +975 MB for this 1 MB file. Now it never sees it.
        assert growth < 200 * MB, f"extraction grew by {growth / MB:.0f} MB"
        assert note and "byte-level features only" in note
        assert raw["header"]["coff"]["machine"] == "" and raw["section"] == {"entry": "", "sections": []}
        assert sum(raw["histogram"]) == len(bomb) and raw["general"]["size"] == len(bomb)
        raw, note, _ = pool.run(T32.read_bytes())  # a real PE is still parsed, without a note
        assert raw["header"]["coff"]["machine"] == "I386" and note is None
    finally:
        pool.close()


def test_lief_without_the_guard_hits_the_address_space_limit_and_costs_one_answer():
    """The backstop, should a bomb pass the section check: LIEF in a child limited to 256 MiB of
    address space gets the 1,000 sections no memory; that job fails, naming the limit, and the
    next job in the same pool gets a fresh child."""
    pool = WorkerPool(lief_without_the_guard, memory_bytes=256 * MB)
    try:
        with pytest.raises(WorkerFailure, match="memory limit of 256 MiB") as failure:
            pool.run(section_bomb())
        assert not failure.value.died
        assert pool.run(T32.read_bytes()) == 5
    finally:
        pool.close()


def test_zeros_upload_streams_in_bounded_memory():
    """63 MB of zeros cost 1.2 GB (whole-file bincounts); read 1 MiB at a time they do not."""
    zeros = bytes(63 * MB)
    pool = WorkerPool(measured_extraction)
    try:
        raw, note, growth = pool.run(zeros)
    finally:
        pool.close()
    assert growth < 200 * MB, f"extraction grew by {growth / MB:.0f} MB"
    assert raw["histogram"][0] == len(zeros) and raw["strings"]["numstrings"] == 0 and note is None


def test_a_dead_child_costs_its_job_only():
    worker = ExtractionWorker(extract_or_die)
    try:
        with pytest.raises(WorkerFailure, match="killed by SIGKILL") as failure:
            worker.run(("/nonexistent/die-always.exe", -1, 2, MB))
        assert failure.value.died
        kind, _, reason = worker.run(("/nonexistent/t32.exe", -1, 2, MB))  # a fresh child answers
        assert kind == "skip" and reason.startswith("cannot read")
    finally:
        worker.close()


def test_a_child_past_the_time_limit_is_killed_and_the_next_job_answered():
    worker = ExtractionWorker(extract_or_die)
    try:
        with pytest.raises(WorkerFailure, match="took longer than 0.5 s") as failure:
            worker.run(("/nonexistent/hang-forever.exe", -1, 2, MB), timeout=0.5)
        assert not failure.value.died and worker.pid is None  # killed, not kept
        kind, record, note = worker.run((str(T32), 1, 2, MB), timeout=60)
        assert kind == "record" and record["label"] == 1 and note is None
    finally:
        worker.close()


# -- the service --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ember_models(ember_demo_models) -> Path:
    return ember_demo_models


def make_client(models: Path, **overrides):
    from vigil.artifacts import ArtifactStore
    from vigil.config import Settings
    from vigil.service import create_app

    app = create_app(Settings.from_env(models_dir=models, **overrides), ArtifactStore(models))
    app.config["TESTING"] = True
    return app.test_client()


def test_uploaded_section_bomb_is_scored_on_byte_features_with_a_note(ember_models):
    client = make_client(ember_models)
    response = client.post("/predict/ember", data=section_bomb(), content_type="application/octet-stream")
    assert response.status_code == 200, response.get_json()
    [result] = response.get_json()["results"]
    assert result["pe"] is False and "1000 section headers" in result["note"]
    response = client.post("/predict/ember", data=T32.read_bytes(), content_type="application/octet-stream")
    assert response.status_code == 200 and "note" not in response.get_json()["results"][0]


def test_upload_over_the_per_file_limit_is_refused_with_a_reason(ember_models):
    client = make_client(ember_models, max_body_bytes=80 * MB)  # a body limit above the file limit
    response = client.post("/predict/ember", data=bytes(65 * MB), content_type="application/octet-stream")
    assert response.status_code == 413
    answer = response.get_json()
    assert "over the limit of 67108864 bytes per file" in answer["error"]
    assert answer["detail"]["bytes"] == 65 * MB


def test_upload_that_exhausts_the_extraction_memory_is_422_and_the_next_one_is_answered(ember_models, monkeypatch):
    from vigil.tasks.ember import task

    monkeypatch.setattr(task, "_pool", WorkerPool(extract_bytes, memory_bytes=64 * MB))  # a small budget
    client = make_client(ember_models)
    try:
        response = client.post("/predict/ember", data=bytes(60 * MB), content_type="application/octet-stream")
        assert response.status_code == 422
        assert "memory limit of 64 MiB" in response.get_json()["error"]
        response = client.post("/predict/ember", data=T32.read_bytes(), content_type="application/octet-stream")
        assert response.status_code == 200 and response.get_json()["results"][0]["pe"] is True
    finally:
        task._pool.close()


# -- item 6: `vigil ember extract` batches ------------------------------------------------------
@pytest.fixture
def ten_good_files(tmp_path) -> Path:
    import pip

    launchers = sorted((Path(pip.__file__).parent / "_vendor" / "distlib").glob("*.exe")) + [T32]
    folder = tmp_path / "batch"
    folder.mkdir()
    for i in range(10):
        shutil.copy(launchers[i % len(launchers)], folder / f"good-{i}.exe")
    return folder


def test_a_worker_that_dies_is_retried_once_then_skipped_and_the_others_land(ten_good_files):
    shutil.copy(T32, ten_good_files / "die-always.exe")
    shutil.copy(T32, ten_good_files / "die-once.exe")
    out, said = io.StringIO(), []
    report = extract_files([str(ten_good_files)], out, processes=2, progress=False, say=said.append, job=extract_or_die)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert report.files == 12 and report.written == len(records) == 11  # 10 good + die-once on retry
    assert sorted(Path(r.split(":")[0]).name for r in report.retried) == ["die-always.exe", "die-once.exe"]
    [skipped] = report.skipped
    assert skipped.startswith(str(ten_good_files / "die-always.exe"))
    assert "killed by SIGKILL (twice)" in skipped
    assert any("die-once.exe" in line and "retried once in a fresh process" in line for line in said)
    assert all(r["header"]["coff"]["machine"] for r in records)


def test_oversized_file_among_ten_good_ones_is_refused_and_the_ten_land(ten_good_files, tmp_path, capsys):
    with open(ten_good_files / "huge.bin", "wb") as handle:
        handle.truncate(600 * MB)  # sparse: 600 MB of zeros that take no disk
    output = tmp_path / "raw.jsonl"
    assert main(["ember", "extract", str(ten_good_files), "-o", str(output), "-q"]) == 1
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(records) == 10 and all(r["header"]["coff"]["machine"] for r in records)
    err = capsys.readouterr().err
    assert f"skipped {ten_good_files / 'huge.bin'}: 629145600 bytes, over the limit of 67108864 bytes" in err
    assert "wrote 10 raw records" in err and "skipped 1 of 11 files" in err


def test_file_over_the_memory_limit_is_skipped_with_the_reason_and_the_others_land(ten_good_files, tmp_path, capsys):
    with open(ten_good_files / "big.bin", "wb") as handle:
        handle.truncate(48 * MB)
    output = tmp_path / "raw.jsonl"
    assert main(["ember", "extract", str(ten_good_files), "-o", str(output), "-q", "--memory-mb", "32"]) == 1
    assert len(output.read_text().splitlines()) == 10
    err = capsys.readouterr().err
    assert (
        f"skipped {ten_good_files / 'big.bin'}: feature extraction needed more than its memory limit of 32 MiB" in err
    )
