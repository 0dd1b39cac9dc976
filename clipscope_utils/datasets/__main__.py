"""Command line: ``python -m clipscope_utils.datasets generate --family comco --objects 3 --images 1000 --out DIR``;
``python -m clipscope_utils.datasets export --layout release|coco|domainnet --out DIR [generation options]`` writes
generated scenes in a real dataset's layout (stand-ins for the real loaders)."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from .captions import ORDER_POLICIES, TEMPLATES
from .families import FAMILIES
from .export import DOMAINNET_DOMAINS, export_report, to_coco, to_domainnet, to_release
from .scenes import (
    BACKGROUNDS,
    LAYOUTS,
    SLOT_ANCHORS,
    SceneSpec,
    count_images,
    generate,
    generate_cached,
)
from .tables import DatasetError


def add_spec_arguments(g: argparse.ArgumentParser, layout_option: str = "--layout") -> None:
    """The options that make a SceneSpec (shared by ``generate`` and ``export``, where ``--layout`` names the
    dataset layout and the scene layout is ``--scene-layout``)."""
    d = SceneSpec()
    g.add_argument("--family", choices=FAMILIES, default=d.family)
    g.add_argument("--objects", type=int, nargs="+", default=list(d.objects), help="object counts (1..5)")
    g.add_argument("--images", type=int, default=d.images, help="scenes per object count")
    g.add_argument("--image-size", type=int, default=d.image_size, help="side in pixels")
    g.add_argument("--large-size", type=float, default=d.large_size, help="large object, fraction of the side")
    g.add_argument("--small-size", type=float, default=d.small_size, help="small objects, fraction of the side")
    g.add_argument(layout_option, dest="scene_layout", choices=LAYOUTS, default=d.layout,
                   help="slots: the paper's fixed slots; free: random places (the release cannot name these)")
    g.add_argument("--large-slot", choices=["random", *SLOT_ANCHORS], default=d.large_slot)
    g.add_argument("--order", choices=ORDER_POLICIES, default=d.order, help="caption order policy")
    g.add_argument("--templates", nargs="+", choices=sorted(TEMPLATES), default=list(d.templates))
    g.add_argument("--single-sizes", type=float, nargs="*", default=[], help="sizes of single-object references")
    g.add_argument("--background", default=d.background, help=f"{sorted(BACKGROUNDS)} or #rrggbb")
    g.add_argument("--classes", nargs="*", default=[], help="restrict to these class names")
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--workers", type=int, default=None, help="processes (default: up to 2)")


def spec_of(args: argparse.Namespace) -> SceneSpec:
    return SceneSpec(
        family=args.family, objects=tuple(args.objects), images=args.images, image_size=args.image_size,
        large_size=args.large_size, small_size=args.small_size, layout=args.scene_layout,
        large_slot=args.large_slot, order=args.order, templates=tuple(args.templates),
        single_sizes=tuple(args.single_sizes), background=args.background, class_names=tuple(args.classes),
        seed=args.seed,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m clipscope_utils.datasets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="render a ComCO-like or SimCO-like dataset to a folder")
    add_spec_arguments(g)
    g.add_argument("--out", required=True, help="output folder (must not exist unless --overwrite)")
    g.add_argument("--overwrite", action="store_true")
    e = sub.add_parser("export", help="generate scenes (cached) and write them in a real dataset's layout")
    e.add_argument("--layout", choices=["release", "coco", "domainnet"], required=True,
                   help="the authors' ComCO/SimCO release, COCO 2017 or DomainNet")
    e.add_argument("--out", required=True, help="output folder (must not exist unless --overwrite)")
    e.add_argument("--overwrite", action="store_true", help="replace an earlier export (never other folders)")
    e.add_argument("--export-size", type=int, default=None,
                   help="side of the written images (default: 512 for release, the generated size otherwise)")
    e.add_argument("--split", default="val2017", help="coco: split name")
    e.add_argument("--captions-per-image", type=int, default=5, help="coco: captions per image")
    e.add_argument("--domains", nargs="+", choices=DOMAINNET_DOMAINS, default=["real", "sketch"],
                   help="domainnet: domains to write")
    e.add_argument("--per-class", type=int, default=2, help="domainnet: images per class and domain")
    add_spec_arguments(e, layout_option="--scene-layout")
    return parser


def export(args: argparse.Namespace, spec: SceneSpec) -> None:
    if Path(args.out).exists() and not args.overwrite:  # before generating, which can take a while
        raise DatasetError(f"output folder {args.out} already exists (pass --overwrite to replace an earlier export)")
    scenes = generate_cached(spec, workers=args.workers, progress=True)
    if args.layout == "release":
        size = args.export_size if args.export_size is not None else 512
        to_release(scenes, args.out, family=spec.family, image_size=size, overwrite=args.overwrite)
    elif args.layout == "coco":
        to_coco(scenes, args.out, split=args.split, captions_per_image=args.captions_per_image,
                image_size=args.export_size, overwrite=args.overwrite)
    else:
        to_domainnet(scenes, args.out, domains=tuple(args.domains), per_class=args.per_class,
                     image_size=args.export_size, overwrite=args.overwrite)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        spec = spec_of(args)
        start = time.perf_counter()
        if args.command == "export":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the skipped counts are printed below
                export(args, spec)
        else:
            generate(spec, args.out, workers=args.workers, overwrite=args.overwrite, load=False)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    took = time.perf_counter() - start
    if args.command == "export":
        report = export_report(args.out)
        skipped = f"; skipped {report['skipped']}" if report["skipped"] else ""
        print(f"wrote the {args.layout} layout to {args.out} in {took:.1f} s: {report['written']}{skipped}")
        return 0
    n = count_images(spec)
    print(f"wrote {n} images to {args.out} in {took:.1f} s ({n / took:.0f} images/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
