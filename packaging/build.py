"""Build the voicedesk bundle for this OS into ``dist/voicedesk/`` and report its size.

    python packaging/build.py            # build, trim, check, archive, print sizes
    python packaging/build.py --smoke    # ... and run the frozen app's --self-test

Steps: PyInstaller with ``packaging/voicedesk.spec`` (onedir); on Linux, remove the
shared libraries that nothing in the bundle links to any more; check the frozen
app has what it loads at run time (PortAudio, the WebRTC echo-cancellation library,
Qt's platform plugins); archive it (``.tar.gz``, or ``.zip`` on Windows); print the
folder's size against the budget (Linux: 280 MB, the team's decision: 217 MB before the
hands-free hotword detector, plus at most 60 MB for it) and the archive's size.
"""

from __future__ import annotations

import argparse
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "packaging" / "voicedesk.spec"
DIST = ROOT / "dist"
BUNDLE = DIST / "voicedesk"
BUDGET_MB: dict[str, float | None] = {"folder": 280.0, "archive": None}  # the Linux budget


def version() -> str:
    text = (ROOT / "src" / "voicedesk" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"', text, re.M)
    assert match is not None
    return match.group(1)


def run_pyinstaller() -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "PyInstaller",
            "--noconfirm",
            "--clean",
            "--distpath",
            str(DIST),
            "--workpath",
            str(ROOT / "build" / "pyinstaller"),
            str(SPEC),
        ],
        check=True,
        cwd=ROOT,
    )


def _needed(path: Path) -> set[str]:
    out = subprocess.run(
        ["objdump", "-p", str(path)], capture_output=True, text=True, check=False
    ).stdout
    return {line.split()[1] for line in out.splitlines() if line.strip().startswith("NEEDED")}


def _is_elf(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == b"\x7fELF"


def trim_linux(bundle: Path) -> list[str]:
    """Delete plain shared libraries no kept binary links to (transitively).

    Roots: the executable, Python extension modules, Qt plugins, and libraries loaded
    with ctypes (livekit's FFI). Everything else must be reachable through NEEDED."""
    internal = bundle / "_internal"
    files = [
        p
        for p in internal.rglob("*")
        if p.is_file() and not p.is_symlink() and ".so" in p.name and _is_elf(p)
    ]

    def is_plain_library(path: Path) -> bool:
        rel = path.relative_to(internal).parts
        name = path.name
        extension = name.endswith(".abi3.so") or "cpython-" in name
        return not extension and "plugins" not in rel and "livekit" not in rel

    by_name: dict[str, Path] = {}
    for path in files:
        if is_plain_library(path):
            by_name.setdefault(path.name, path)
    roots = [bundle / "voicedesk", *(p for p in files if not is_plain_library(p))]
    wanted = {name for name in by_name if name.startswith("libpython")}
    todo = list(roots) + [by_name[n] for n in wanted]
    while todo:
        for lib in _needed(todo.pop()):
            if lib in by_name and lib not in wanted:
                wanted.add(lib)
                todo.append(by_name[lib])
    removed = []
    for path in files:
        if is_plain_library(path) and path.name not in wanted:
            path.unlink()
            removed.append(path.name)
    for link in internal.rglob("*"):  # symlinks to what was removed
        if link.is_symlink() and not link.exists():
            link.unlink()
    return sorted(removed)


def strip_linux(bundle: Path) -> float:
    """Strip debug symbols (a pyenv libpython carries ~16 MB of them). Not the
    auditwheel-patched libraries in ``*.libs`` folders: strip breaks their layout."""
    before = folder_mb(bundle)
    for path in (bundle / "_internal").rglob("*"):
        if path.is_symlink() or not path.is_file() or ".so" not in path.name:
            continue
        if any(part.endswith(".libs") for part in path.parts) or not _is_elf(path):
            continue
        subprocess.run(["strip", "--strip-unneeded", str(path)], check=False)
    return before - folder_mb(bundle)


def check(bundle: Path) -> list[str]:
    """What the frozen app loads at run time, and where it is; raises if missing."""
    internal = bundle / "_internal"
    wanted = {
        "PortAudio": ["libportaudio*", "**/_portaudio*"],
        "WebRTC echo cancellation (livekit FFI)": ["livekit/rtc/resources/*livekit_ffi*"],
        "Qt platform plugin": [
            "PySide6/Qt/plugins/platforms/*xcb*",
            "PySide6/plugins/platforms/qwindows*",
            "PySide6/Qt/plugins/platforms/*cocoa*",
        ],
        "soxr": ["soxr/*soxr_ext*"],
        "elevenlabs package metadata": ["elevenlabs-*.dist-info/METADATA"],
    }
    found = []
    for what, patterns in wanted.items():
        hits = [p for pattern in patterns for p in internal.glob(pattern)]
        if not hits:
            raise SystemExit(f"build.py: the bundle has no {what} ({', '.join(patterns)})")
        found.append(f"{what}: {hits[0].relative_to(bundle)}")
    return found


def folder_mb(path: Path) -> float:
    """Bytes on disk: PyInstaller links some libraries into two places (symlinks)."""
    files = (p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return sum(p.lstat().st_size for p in files) / 2**20


def archive(bundle: Path) -> Path:
    """``.zip`` on Windows; elsewhere ``.tar.gz`` of the folder (macOS: of the ``.app``)."""
    base = DIST / f"voicedesk-{version()}-{sys.platform}-{platform.machine().lower()}"
    if sys.platform == "darwin" and (DIST / "voicedesk.app").is_dir():
        bundle = DIST / "voicedesk.app"
    if sys.platform == "win32":
        target = base.with_suffix(".zip")
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in bundle.rglob("*"):
                zf.write(path, path.relative_to(bundle.parent))
        return target
    target = Path(f"{base}.tar.gz")
    with tarfile.open(target, "w:gz", compresslevel=9) as tar:
        tar.add(bundle, arcname=bundle.name)
    return target


def smoke(bundle: Path) -> None:
    """The frozen app's self-test (offscreen when there is no display)."""
    exe = bundle / ("voicedesk-console.exe" if sys.platform == "win32" else "voicedesk")
    result = subprocess.run(
        [str(exe), "--self-test"], capture_output=True, text=True, timeout=180, check=False
    )
    print(result.stdout.strip())
    if result.returncode != 0:
        print(result.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"build.py: the frozen self-test failed (exit {result.returncode})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="run the frozen --self-test")
    parser.add_argument("--skip-build", action="store_true", help="use dist/voicedesk as is")
    args = parser.parse_args()
    started = time.monotonic()
    if not args.skip_build:
        shutil.rmtree(BUNDLE, ignore_errors=True)
        run_pyinstaller()
    if sys.platform.startswith("linux"):
        removed = trim_linux(BUNDLE)
        print(f"left out {len(removed)} libraries nothing links to: {' '.join(removed)}")
        print(f"stripping debug symbols saved {strip_linux(BUNDLE):.1f} MB")
    for line in check(BUNDLE):
        print(f"found {line}")
    if args.smoke:
        smoke(BUNDLE)
    packed = archive(BUNDLE)
    folder, packed_mb = folder_mb(BUNDLE), packed.stat().st_size / 2**20
    took = time.monotonic() - started
    print(f"voicedesk {version()} bundle for {sys.platform}, built in {took:.0f} s")
    print("| | size, MB | Linux budget, MB |")
    print("|---|---|---|")
    for label, size, key in (
        ("folder (onedir)", folder, "folder"),
        (packed.name, packed_mb, "archive"),
    ):
        budget = BUDGET_MB[key]
        if budget is None:
            print(f"| {label} | {size:.1f} | none set |")
        else:
            verdict = "met" if size <= budget else "MISSED"
            print(f"| {label} | {size:.1f} | {budget:.0f} {verdict} |")
    print("largest parts:")
    parts: dict[str, int] = {}
    internal = BUNDLE / "_internal"
    for path in internal.rglob("*"):
        if path.is_file() and not path.is_symlink():
            top = path.relative_to(internal).parts[0]
            parts[top] = parts.get(top, 0) + path.stat().st_size
    for name, size in sorted(parts.items(), key=lambda kv: -kv[1])[:8]:
        print(f"  {size / 2**20:6.1f} MB  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
