"""Fresh virtual environments without a package index: this environment's distributions, rewheeled.

A fresh venv is made with ``python -m venv`` and filled by ``pip install --no-index --find-links``
from wheels rebuilt out of the files the running environment has installed (RECORD), so what
lands there is exactly the pinned versions, resolved by pip from nothing else, with no network.
A ``base`` (e.g. ``torch``: with its CUDA libraries 5 GB, the same for every server kind) is not
copied: a ``.pth`` file puts links to its installed files on the venv's path, which is what
``python -m venv --system-site-packages`` over a base interpreter that has torch would give.

Used by ``scripts/footprint.py`` and by the Space-export test.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

SKIPPED_DIST_INFO = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def closure(requirements: Iterable[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions ``requirements`` need, transitively (markers and extras
    evaluated for this interpreter), by canonical name. Missing ones raise ``LookupError``."""
    found: dict[str, metadata.Distribution] = {}
    seen: set[tuple[str, str]] = set()
    pending = [(Requirement(text), "") for text in requirements]
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker and not requirement.marker.evaluate({**default_environment(), "extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        try:
            dist = found.get(name) or metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise LookupError(f"{requirement.name} is needed but not installed here") from None
        found[name] = dist
        for wanted in ["", *sorted(requirement.extras)]:
            if (name, wanted) in seen:
                continue
            seen.add((name, wanted))
            pending.extend((Requirement(text), wanted) for text in dist.requires or [])
    return found


def installed_files(dist: metadata.Distribution) -> list[Path]:
    """The distribution's files inside its site-packages (scripts and data outside it are left out:
    pip regenerates console scripts from the metadata)."""
    root = Path(str(dist.locate_file("")))
    files = []
    for entry in dist.files or []:
        if entry.parts[0] == ".." or entry.suffix == ".pyc":
            continue
        path = root / entry
        if path.is_file():
            files.append(path)
    return files


def size_bytes(dists: Iterable[metadata.Distribution]) -> int:
    return sum(path.stat().st_size for dist in dists for path in installed_files(dist))


def _dist_info_name(dist: metadata.Distribution) -> str:
    (name,) = {entry.parts[0] for entry in dist.files or [] if entry.parts[0].endswith(".dist-info")}
    return name


def rewheel(dist: metadata.Distribution, out_dir: Path) -> Path:
    """A wheel of the installed distribution (stored, not compressed: it is read once, locally)."""
    info = _dist_info_name(dist)
    root = Path(str(dist.locate_file("")))
    wheel_meta = (root / info / "WHEEL").read_text()
    tags = re.findall(r"^Tag: (\S+)$", wheel_meta, re.MULTILINE)
    if not tags:
        raise ValueError(f"{dist.metadata['Name']} was not installed from a wheel (no WHEEL tags)")
    # the compressed tag set, e.g. py2.py3-none-any: one dotted list per tag component
    tag = "-".join(
        ".".join(dict.fromkeys(parts)) for parts in zip(*(t.split("-") for t in tags), strict=True)
    )
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    target = out_dir / f"{name}-{dist.version}-{tag}.whl"
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as wheel:
        for path in installed_files(dist):
            arcname = path.relative_to(root).as_posix()
            if arcname.startswith(f"{info}/") and path.name in SKIPPED_DIST_INFO:
                continue
            data = path.read_bytes()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            wheel.writestr(arcname, data)
            writer.writerow([arcname, f"sha256={digest}", len(data)])
        writer.writerow([f"{info}/RECORD", "", ""])
        wheel.writestr(f"{info}/RECORD", record.getvalue())
    return target


def link_base(dists: Iterable[metadata.Distribution], overlay: Path) -> None:
    """Links to the distributions' top-level files and folders (dist-info included) in ``overlay``."""
    overlay.mkdir(parents=True, exist_ok=True)
    for dist in dists:
        root = Path(str(dist.locate_file("")))
        for top in {path.relative_to(root).parts[0] for path in installed_files(dist)}:
            link = overlay / top
            if not link.exists():
                link.symlink_to(root / top)


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def fresh_venv(
    venv: Path,
    requirements: list[str],
    work_dir: Path,
    *,
    base: Iterable[str] = (),
    compile_bytecode: bool = True,
) -> None:
    """``python -m venv VENV``, then ``pip install --no-index`` of ``requirements`` from wheels of
    this environment's distributions; ``base`` distributions are linked in, not installed."""
    base_dists = closure(base)
    wanted = {name: dist for name, dist in closure(requirements).items() if name not in base_dists}
    wheels = work_dir / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    for dist in wanted.values():
        rewheel(dist, wheels)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv_python(venv)), "-m", "pip", "--disable-pip-version-check"]
    # the venv's own setuptools (ensurepip's) would shadow the base's newer one
    shadowing = [name for name in base_dists if name in ("setuptools", "wheel")]
    if shadowing:
        subprocess.run([*pip, "uninstall", "--quiet", "--yes", *shadowing], check=True)
    if base_dists:
        link_base(base_dists.values(), work_dir / "base")
        (site_packages(venv) / "_base_packages.pth").write_text(str(work_dir / "base") + "\n")
    requirements_file = work_dir / "requirements.txt"
    requirements_file.write_text("\n".join(requirements) + "\n")
    command = [
        *pip,
        "install",
        "--quiet",
        "--no-index",
        "--find-links",
        str(wheels),
        "-r",
        str(requirements_file),
    ]
    if not compile_bytecode:
        command.append("--no-compile")
    subprocess.run(command, check=True)
