#!/usr/bin/env python3
"""Build a corpus of real Windows PE files from pinned Debian 12 (bookworm) packages.

    sudo-less root: python scripts/build_debian_pe_corpus.py [--out runs/pe-corpus] [--no-i386]

Steps: ``apt-get update`` once (after ``dpkg --add-architecture i386`` unless ``--no-i386``),
``apt-get download PACKAGE[:ARCH]=VERSION`` for every pinned package below, ``dpkg-deb -x`` each
into a temporary folder, unzip the Python wheels found inside (pip's and setuptools' launchers
live in them), and keep every file that starts with ``MZ``, has a ``PE\\0\\0`` signature where
``e_lfanew`` points and that LIEF (whichever this interpreter has) recognises as PE. Kept files
are copied to ``OUT/files/<package>_<arch>/<path in the package>``; ``OUT/manifest.jsonl`` has one
line per file: package, arch, version, path (relative to OUT/files), size, sha256.

The corpus is not part of git (``runs/`` is ignored): the pins make it reproducible while Debian
keeps these versions on its mirrors (bookworm point releases replace superseded versions; then
update the pins and rebuild the references, ``scripts/ember_reference.py``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

# Versions that several binary packages of one source package share.
WINE = "8.0~repack-4"
NSIS = "3.08-3+deb12u1"
MINGW_RUNTIME = "12.2.0-14+deb12u1+25.2+b1"
MONO = "6.8.0.105+dfsg-3.3+deb12u1"
GRUB = "2.06-13+deb12u2"
PIP = "23.0.1+dfsg-1"
SETUPTOOLS = "66.1.1-1+deb12u2"

# (package, arch, version), in the order the manifest lists them. arch "all" packages are downloaded
# without an arch qualifier.
PACKAGES = [
    ("libwine", "amd64", WINE),  # wine's builtin DLLs/EXEs, PE32+
    ("libwine", "i386", WINE),  # the same, PE32
    ("nsis", "amd64", NSIS),  # NSIS installer stubs and plugins
    ("nsis-common", "all", NSIS),
    ("gcc-mingw-w64-x86-64-posix-runtime", "amd64", MINGW_RUNTIME),
    ("gcc-mingw-w64-i686-posix-runtime", "amd64", MINGW_RUNTIME),
    ("gcc-mingw-w64-x86-64-win32-runtime", "amd64", MINGW_RUNTIME),
    ("gcc-mingw-w64-i686-win32-runtime", "amd64", MINGW_RUNTIME),
    ("libz-mingw-w64", "all", "1.2.13+dfsg-1"),
    ("libmono-corlib4.5-dll", "all", MONO),  # .NET assemblies
    ("libmono-system4.0-cil", "all", MONO),
    ("libmono-system-core4.0-cil", "all", MONO),
    ("libmono-system-xml4.0-cil", "all", MONO),
    ("libmono-system-data4.0-cil", "all", MONO),
    ("libmono-microsoft-csharp4.0-cil", "all", MONO),
    ("grub-efi-amd64-bin", "amd64", GRUB),  # EFI binaries
    ("grub-efi-ia32-bin", "amd64", GRUB),
    ("grub-efi-amd64-signed", "amd64", "1+2.06+13+deb12u2"),
    ("shim-signed", "amd64", "1.51~1+deb12u1+16.1-2~deb12u1"),
    ("shim-unsigned", "amd64", "16.1-2~deb12u1"),
    ("refind", "amd64", "0.13.2-1+b1"),
    ("systemd-boot-efi", "amd64", "252.39-1~deb12u2"),
    ("syslinux-efi", "all", "3:6.04~git20190206.bf6db5b4+dfsg1-3"),
    ("memtest86+", "amd64", "6.10-4"),
    ("clamav-testfiles", "all", "1.4.6+dfsg-0+deb12u1"),  # small (packed) test executables
    ("python3-pip-whl", "all", PIP),  # wheels: distlib launchers
    ("python3-setuptools-whl", "all", SETUPTOOLS),  # wheels: cli/gui launchers
    ("python3-pip", "all", PIP),
    ("python3-setuptools", "all", SETUPTOOLS),
]
MAX_FILE_BYTES = 64 << 20


def run(*cmd: str, cwd: Path | None = None) -> None:
    print("+", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, cwd=cwd)


def looks_like_pe(data: bytes) -> bool:
    if len(data) < 0x40 or data[:2] != b"MZ":
        return False
    (e_lfanew,) = struct.unpack_from("<I", data, 0x3C)
    return data[e_lfanew : e_lfanew + 4] == b"PE\0\0" if e_lfanew + 4 <= len(data) else False


def lief_says_pe(data: bytes) -> bool:
    try:
        import lief
    except ImportError:
        return True
    return bool(lief.is_pe(list(data[: 1 << 16])))  # is_pe reads the headers only


def candidates(root: Path):
    """(path relative to root, bytes) of every regular file, wheels' members included."""
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            continue
        rel = path.relative_to(root).as_posix()
        if path.suffix == ".whl":
            with zipfile.ZipFile(path) as wheel:
                for info in sorted(wheel.infolist(), key=lambda i: i.filename):
                    if not info.is_dir() and info.file_size <= MAX_FILE_BYTES:
                        yield f"{rel}!/{info.filename}", wheel.read(info)
        else:
            with path.open("rb") as handle:
                if handle.read(2) != b"MZ":
                    continue
            yield rel, path.read_bytes()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/pe-corpus"))
    parser.add_argument("--no-i386", action="store_true", help="skip the i386 packages")
    parser.add_argument("--no-update", action="store_true", help="skip apt-get update")
    args = parser.parse_args()
    out = args.out.resolve()
    debs, files = out / "debs", out / "files"
    debs.mkdir(parents=True, exist_ok=True)
    packages = [p for p in PACKAGES if not (args.no_i386 and p[1] == "i386")]
    if not args.no_update:
        if any(arch == "i386" for _, arch, _ in packages):
            run("dpkg", "--add-architecture", "i386")
        run("apt-get", "update")
    if files.exists():
        shutil.rmtree(files)
    manifest = []
    for package, arch, version in packages:
        spec = f"{package}={version}" if arch == "all" else f"{package}:{arch}={version}"
        before = set(debs.glob("*.deb"))
        deb_name = f"{package}_{version.replace(':', '%3a')}_{arch}.deb"
        existing = [d for d in before if d.name == deb_name]
        if not existing:
            run("apt-get", "download", spec, cwd=debs)
            existing = sorted(set(debs.glob("*.deb")) - before)
        deb = existing[0]
        kept = 0
        with tempfile.TemporaryDirectory(prefix="pe-corpus-") as tmp:
            run("dpkg-deb", "-x", str(deb), tmp)
            for rel, data in candidates(Path(tmp)):
                if not (looks_like_pe(data) and lief_says_pe(data)):
                    continue
                target = files / f"{package}_{arch}" / rel.replace("!/", "/")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                manifest.append(
                    {
                        "package": package,
                        "arch": arch,
                        "version": version,
                        "deb": deb.name,
                        "path": target.relative_to(files).as_posix(),
                        "size": len(data),
                        "sha256": hashlib.sha256(data).hexdigest(),
                    }
                )
                kept += 1
        print(f"{package}:{arch} {version}: {kept} PE files", file=sys.stderr)
    with (out / "manifest.jsonl").open("w") as handle:
        for row in manifest:
            handle.write(json.dumps(row, sort_keys=True) + "\n")
    unique = len({row["sha256"] for row in manifest})
    print(f"{len(manifest)} PE files ({unique} distinct) from {len(packages)} packages -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
