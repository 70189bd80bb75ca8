"""The package wheel of a release: built from a clean copy of the source tree, and its requirements."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from email.parser import Parser
from pathlib import Path

from softlines_attr.emr.errors import EmrStageError
from softlines_attr.emr.release import collect_sources

log = logging.getLogger(__name__)

#: Requirements that EMR provides itself and the bootstrap must not install over it.
EMR_PROVIDED = ("pyspark",)


def build_wheel(root: Path, out_dir: Path) -> Path:
    """Build the package wheel from a clean copy of the source tree (no network, no build isolation).

    The copy keeps ``build/`` and ``*.egg-info`` out of the working tree and makes the wheel hold
    exactly the files the release digest covers.

    Raises:
        EmrStageError: with the tail of pip's output when the build fails.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="softlines-attr-wheel-") as tmp:
        src = Path(tmp) / "src"
        for f in collect_sources(root):
            target = src / f.rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f.path, target)
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-input",
            "--disable-pip-version-check",
            "--quiet",
            "--wheel-dir",
            str(Path(tmp) / "dist"),
            str(src),
        ]
        env = {**os.environ, "PIP_NO_INDEX": "1"}
        log.info("building the wheel from %s", root)
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=900, check=False)
        wheels = sorted((Path(tmp) / "dist").glob("*.whl"))
        if proc.returncode != 0 or len(wheels) != 1:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
            raise EmrStageError(
                f"building the wheel failed (exit {proc.returncode}); expected one .whl in the output, "
                f"found {[w.name for w in wheels]}; needs setuptools>=64 and wheel in this Python:\n{tail}"
            )
        final = out_dir / wheels[0].name
        shutil.copy2(wheels[0], final)
    return final


def wheel_requirements(wheel: Path) -> list[str]:
    """The wheel's runtime requirements (``Requires-Dist`` without extras), minus what EMR provides."""
    with zipfile.ZipFile(wheel) as zf:
        meta_name = next((n for n in zf.namelist() if n.endswith(".dist-info/METADATA")), None)
        if meta_name is None:
            raise EmrStageError(f"{wheel}: expected a .dist-info/METADATA file in the wheel, found none")
        meta = Parser().parsestr(zf.read(meta_name).decode("utf-8"))
    reqs = []
    for req in meta.get_all("Requires-Dist") or []:
        if "extra ==" in req:
            continue
        name = req.split(";")[0].strip()
        base = name.replace(" ", "").split("[")[0]
        for sep in ("=", "<", ">", "!", "~"):
            base = base.split(sep)[0]
        if base.lower() in EMR_PROVIDED:
            continue
        reqs.append(name.replace(" ", ""))
    return reqs
