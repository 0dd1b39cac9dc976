"""Command line: ``python -m clipscope_utils.datasets generate --family comco --objects 3 --images 1000 --out DIR``."""

from __future__ import annotations

import argparse
import sys
import time

from .captions import ORDER_POLICIES, TEMPLATES
from .families import FAMILIES
from .scenes import (
    BACKGROUNDS,
    LAYOUTS,
    SLOT_ANCHORS,
    SceneSpec,
    count_images,
    generate,
)
from .tables import DatasetError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m clipscope_utils.datasets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="render a ComCO-like or SimCO-like dataset to a folder")
    d = SceneSpec()
    g.add_argument("--family", choices=FAMILIES, default=d.family)
    g.add_argument("--objects", type=int, nargs="+", default=list(d.objects), help="object counts (1..5)")
    g.add_argument("--images", type=int, default=d.images, help="scenes per object count")
    g.add_argument("--image-size", type=int, default=d.image_size, help="side in pixels")
    g.add_argument("--large-size", type=float, default=d.large_size, help="large object, fraction of the side")
    g.add_argument("--small-size", type=float, default=d.small_size, help="small objects, fraction of the side")
    g.add_argument("--layout", choices=LAYOUTS, default=d.layout)
    g.add_argument("--large-slot", choices=["random", *SLOT_ANCHORS], default=d.large_slot)
    g.add_argument("--order", choices=ORDER_POLICIES, default=d.order, help="caption order policy")
    g.add_argument("--templates", nargs="+", choices=sorted(TEMPLATES), default=list(d.templates))
    g.add_argument("--single-sizes", type=float, nargs="*", default=[], help="sizes of single-object references")
    g.add_argument("--background", default=d.background, help=f"{sorted(BACKGROUNDS)} or #rrggbb")
    g.add_argument("--classes", nargs="*", default=[], help="restrict to these class names")
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--workers", type=int, default=None, help="processes (default: up to 2)")
    g.add_argument("--out", required=True, help="output folder (must not exist unless --overwrite)")
    g.add_argument("--overwrite", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        spec = SceneSpec(
            family=args.family, objects=tuple(args.objects), images=args.images, image_size=args.image_size,
            large_size=args.large_size, small_size=args.small_size, layout=args.layout,
            large_slot=args.large_slot, order=args.order, templates=tuple(args.templates),
            single_sizes=tuple(args.single_sizes), background=args.background, class_names=tuple(args.classes),
            seed=args.seed,
        )
        start = time.perf_counter()
        generate(spec, args.out, workers=args.workers, overwrite=args.overwrite, load=False)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    took = time.perf_counter() - start
    n = count_images(spec)
    print(f"wrote {n} images to {args.out} in {took:.1f} s ({n / took:.0f} images/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
