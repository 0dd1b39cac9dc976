"""Benchmark: dataset generation rate and memory (the hot path of the training chapters).

Each configuration runs in a fresh process (so sprite caches and memory start cold, as for a user),
generating a dataset to a temporary folder; the rate counts every image written, single-object
references included, from the call to ``generate`` to its return. Peak memory is the maximum
resident set of the parent and of the largest worker. Writes ``benchmarks/RESULTS.md``.

    python benchmarks/generation.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, tempfile, time
from pathlib import Path
from clipscope_utils.datasets import SceneSpec, generate
from clipscope_utils.datasets.scenes import count_images
cfg = json.loads(sys.argv[1])
spec = SceneSpec(family=cfg["family"], objects=(2, 3, 4, 5), images=cfg["images"], image_size=cfg["size"])
with tempfile.TemporaryDirectory() as tmp:
    t = time.perf_counter()
    generate(spec, Path(tmp) / "ds", workers=cfg["workers"], progress=False, load=False)
    took = time.perf_counter() - t
    n = count_images(spec)
    t = time.perf_counter()  # again, sprites already drawn: the rate of a long training-data stream
    generate(spec, Path(tmp) / "again", workers=cfg["workers"], progress=False, load=False)
    warm = n / (time.perf_counter() - t)
self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"images_written": n, "seconds": took, "rate": n / took, "warm_rate": warm, "parent_mb": self_kb / 1024, "worker_mb": child_kb / 1024}))
"""


def run(cfg: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg)], capture_output=True, text=True, check=True)
    return {**cfg, **json.loads(out.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer images (a rough check)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    args = parser.parse_args()
    base = 250 if args.quick else 1000
    configs = [
        {"family": fam, "size": size, "workers": w, "images": base if size == 64 else base // 4}
        for fam in ("comco", "simco") for size in (64, 224) for w in (1, 2)
    ]
    # memory must stay flat with the number of images: same config, 4x the images
    configs += [{"family": "comco", "size": 64, "workers": 2, "images": base * k} for k in (1, 4)]
    rows = []
    for cfg in configs:
        r = run(cfg)
        print(json.dumps(r))
        rows.append(r)
    from clipscope_utils.device import describe_device

    lines = [
        f"Dataset generation, measured {time.strftime('%Y-%m-%d')} on {describe_device()} "
        f"by `benchmarks/generation.py` (scenes with 2, 3, 4 and 5 objects plus single-object references, "
        "PNG images and masks written to disk). *Cold*: first run in a fresh process, sprite drawing and "
        "process start included; *warm*: the same run again in that process. The last two rows (1x and 4x the "
        "images) show that memory stays flat: rows stream to disk.",
        "",
        "| family | image px | workers | images written | seconds (cold) | images/s (cold) | images/s (warm) | peak MB parent | peak MB worker |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['family']} | {r['size']} | {r['workers']} | {r['images_written']} | {r['seconds']:.1f} | "
            f"{r['rate']:.0f} | {r['warm_rate']:.0f} | {r['parent_mb']:.0f} | {r['worker_mb']:.0f} |"
        )
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
