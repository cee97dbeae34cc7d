#!/usr/bin/env python3
"""The `imgpress` command against `curl` in a shell loop, on a RUNNING imgpress (it starts nothing).

    .venv/bin/python scripts/bench_cli.py --url http://127.0.0.1:8000 [--count 30] [--rounds 3]

Makes --count JPEG photos (q95) from ../shared/corpus/photos and photos-extra (or --images DIR),
then times, taking turns --rounds times so that a host's drift weighs on both: `imgpress
compress DIR --out OUT --quality 70` (uploads at its default concurrency), and what a user
would otherwise script, a bash loop of one `curl` per file (`POST /v1/jobs?quality=70&wait=30`
answered with the image). Both write every output; the run checks that each did. Prints the
median wall time of each and their ratio, then one JSON line.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from measure import print_report  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"
IMGPRESS = Path(sys.executable).parent / "imgpress"
CURL_LOOP = """
for file in "$1"/*.jpg; do
    curl -sS --fail --data-binary @"$file" -H 'Content-Type: image/jpeg' -H 'Accept: image/*' \\
         -o "$2/$(basename "$file" .jpg).min.jpg" "$3/v1/jobs?quality=70&wait=30"
done
"""


def make_photos(folder: Path, count: int, sources: list[Path]) -> None:
    """`count` JPEG photos in `folder`, cycling through the sources at falling JPEG quality."""
    for index in range(count):
        with Image.open(sources[index % len(sources)]) as image:
            out = io.BytesIO()
            image.convert("RGB").save(out, "JPEG", quality=95 - index // len(sources))
        (folder / f"photo-{index:03d}.jpg").write_bytes(out.getvalue())


def timed(command: list[str], out: Path, count: int) -> float:
    """Seconds `command` took to write `count` outputs into a fresh `out`."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    written = list(out.glob("*.min.jpg"))
    if len(written) != count or any(path.stat().st_size == 0 for path in written):
        raise SystemExit(f"{command[0]} wrote {len(written)} of {count} outputs")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=Path, action="append")
    args = parser.parse_args(argv)
    folders = args.images or [CORPUS / "photos", CORPUS / "photos-extra"]
    sources = sorted(path for folder in folders for path in folder.glob("*.png"))
    if not sources:
        raise SystemExit(f"no photos under {', '.join(map(str, folders))}")
    with tempfile.TemporaryDirectory() as temp:
        photos, out = Path(temp) / "photos", Path(temp) / "out"
        photos.mkdir()
        make_photos(photos, args.count, sources)
        cli = [str(IMGPRESS), "compress", str(photos), "--out", str(out), "--quality", "70"]
        cli += ["--server", args.url, "--quiet"]
        curl = ["bash", "-c", CURL_LOOP, "loop", str(photos), str(out), args.url]
        times: dict[str, list[float]] = {"cli": [], "curl": []}
        for _ in range(args.rounds):
            times["cli"].append(timed(cli, out, args.count))
            times["curl"].append(timed(curl, out, args.count))
        input_bytes = sum(path.stat().st_size for path in photos.iterdir())
    cli_s, curl_s = statistics.median(times["cli"]), statistics.median(times["curl"])
    print_report(
        {
            "files": args.count,
            "input_mb": round(input_bytes / 1e6, 1),
            "rounds": args.rounds,
            "cli_s_median": round(cli_s, 2),
            "curl_loop_s_median": round(curl_s, 2),
            "curl_over_cli": round(curl_s / cli_s, 2),
            "cli_s": [round(t, 2) for t in times["cli"]],
            "curl_loop_s": [round(t, 2) for t in times["curl"]],
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
