"""Write docs/ROBUSTNESS.md: every kind of bad or unusual input tried, and what spinelab does with it.

The inputs are the catalogue of ``tests/bad_inputs.py`` (the robustness tests use the same one),
run through ``spinelab predict`` as one batch, plus a few option and output-location mistakes.
Run (about 2 minutes on 2 cores)::

    python benchmarks/robustness.py docs/ROBUSTNESS.md
"""

from __future__ import annotations

import csv
import io
import sys
import tempfile
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bad_inputs import CATALOGUE, make_inputs, spine_ct  # noqa: E402

from spinelab.cli import main  # noqa: E402
from spinelab.io.images import write_nifti  # noqa: E402


def run_cli(argv) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with redirect_stdout(stdout), redirect_stderr(stderr):
        code = main([str(a) for a in argv])
    return code, stdout.getvalue(), "\n".join(line.split("\r")[-1] for line in stderr.getvalue().splitlines())


def spinelab_lines(text: str, folder: Path) -> list[str]:
    """spinelab's own lines, with the temporary folder's path left out."""
    return [line.replace(f"{folder}/", "").replace(str(folder), ".") for line in text.splitlines()
            if line.startswith("spinelab:")]


def cell(text: str) -> str:
    return text.replace("|", "\\|") or "-"


def main_report(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        inputs = make_inputs(folder / "inputs")
        paths = [p for group in inputs.values() for p in group]
        start = time.perf_counter()
        code, stdout, stderr = run_cli(["predict", *paths, "--out", folder / "out"])
        seconds = time.perf_counter() - start
        with open(folder / "out" / "spinelab_summary.csv", newline="") as handle:
            rows = {row["input"]: row for row in csv.DictReader(handle)}
        lines = spinelab_lines(stderr, folder / "inputs")
        text = ["# Robustness", "",
                f"Written by `python benchmarks/robustness.py` on {time.strftime('%Y-%m-%d')}. Every input of "
                "`tests/bad_inputs.py` went through one `spinelab predict` batch "
                f"({len(paths)} inputs, {seconds:.0f} s, exit status {code}); `tests/test_robustness.py` checks the "
                "same catalogue. Refused inputs get one line and no output file; the batch goes on; "
                "`spinelab_summary.csv` lists every input.", "",
                "| input | expected | status | vertebrae | needs review | what spinelab said |",
                "|---|---|---|---|---|---|"]
        for case in CATALOGUE:
            for path in inputs[case.kind]:
                row = rows[str(path)]
                name = path.name
                said = [line for line in lines if f" {name}:" in line or f"/{name}:" in line or f" {name} " in line]
                if row["status"] == "no vertebrae":
                    said.append(row["message"])
                elif row["status"] == "ok":
                    said.append(f"case {row['case'][:24]}: {row['labels']}")
                text.append(f"| {cell(case.kind)} (`{cell(name[:40])}`) | {case.expect} | {row['status']} | "
                            f"{row['vertebrae'] or '-'} | {cell(row['reasons'] or row['needs_review'])} | "
                            f"{cell(' / '.join(said))} |")
        text += ["", "## Options and output locations", "",
                 "| what | exit status | what spinelab said |", "|---|---|---|"]
        scan = write_nifti(spine_ct(), folder / "scan.nii.gz")
        (folder / "a_file").write_text("x")
        for what, argv in (
            ("`predict --out` names a file", ["predict", scan, "--out", folder / "a_file"]),
            ("`predict --out` below a file", ["predict", scan, "--out", folder / "a_file" / "below"]),
            ("`evaluate --max-distance -5`", ["evaluate", folder / "p.csv", folder / "g.csv", "--max-distance", "-5"]),
            ("`evaluate --max-distance nan`", ["evaluate", folder / "p.csv", folder / "g.csv", "--max-distance", "nan"]),
            ("`evaluate --out` names a folder", ["evaluate", folder / "p.csv", folder / "g.csv", "--out", folder]),
            ("`show --out picture.gif`", ["show", scan, "--out", folder / "picture.gif"]),
            ("`predict --method nope`", ["predict", scan, "--method", "nope"]),
        ):
            try:
                code, _, stderr = run_cli(argv)
            except SystemExit as exit_info:  # argparse's own usage errors
                code, stderr = exit_info.code, "argparse usage error"
            said = " / ".join(spinelab_lines(stderr, folder)) or stderr.strip().splitlines()[-1]
            text.append(f"| {what} | {code} | {cell(said)} |")
        out.write_text("\n".join(text) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main_report(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/ROBUSTNESS.md"))
