"""``python -m clipscope_utils.book build --profile default [--set dataset.n_images=200] [--only dataset]``;
``python -m clipscope_utils.book check --profile gpu`` resolves every model, device and folder and executes nothing."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..paths import project_root
from .checks import check_profile, problems
from .profiles import ParameterError, available_profiles, load_profile
from .runner import PROFILES, BuildError, build, prepare_environment, toc_notebooks
from .widgets import WidgetJsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clipscope_utils.book", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="execute the notebooks under a profile and build the HTML")
    b.add_argument("--profile", default="default", help="profile name (profiles/<name>.yml)")
    b.add_argument("--set", dest="overrides", action="append", default=[], metavar="NOTEBOOK.PARAM=VALUE",
                   help="override one parameter (value read as YAML); repeatable")
    b.add_argument("--only", nargs="+", help="execute only these notebooks")
    b.add_argument("--no-html", action="store_true", help="execute notebooks but do not build the HTML")
    b.add_argument("--force", action="store_true", help="re-execute even unchanged notebooks")
    b.add_argument("--root", type=Path, default=None, help="project folder (default: found from cwd)")
    c = sub.add_parser("check", help="resolve every model, device and data folder of a profile; execute nothing")
    c.add_argument("--profile", default="default", help="profile name (profiles/<name>.yml)")
    c.add_argument("--set", dest="overrides", action="append", default=[], metavar="NOTEBOOK.PARAM=VALUE",
                   help="override one parameter (value read as YAML); repeatable")
    c.add_argument("--only", nargs="+", help="check only these notebooks")
    c.add_argument("--root", type=Path, default=None, help="project folder (default: found from cwd)")
    sub.add_parser("profiles", help="list the profiles")
    args = parser.parse_args(argv)

    root = args.root if getattr(args, "root", None) else project_root()
    if root is None:
        print("error: run this inside the clipscope project (no _toc.yml found above the current folder)", file=sys.stderr)
        return 2
    if args.command == "profiles":
        print("\n".join(available_profiles(root / PROFILES)))
        return 0
    if args.command == "check":
        return check(root, args.profile, args.overrides, args.only)
    start = time.perf_counter()
    try:
        results = build(root, args.profile, args.overrides, only=args.only, html=not args.no_html, force=args.force)
    except (ParameterError, BuildError, WidgetJsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    ran = sum(r.status == "executed" for r in results)
    print(f"build succeeded in {time.perf_counter() - start:.1f} s: {ran} executed, {len(results) - ran} skipped")
    return 0


def check(root: Path, profile_name: str, overrides: list[str], only: list[str] | None) -> int:
    """Print per chapter the resolved models (with the training config of every ``trained:`` one) and inputs;
    exit status 1 on any problem."""
    try:
        names = toc_notebooks(root)
        profile = load_profile(root / PROFILES, profile_name, names, overrides)
        unknown = [n for n in only or [] if n not in names]
        if unknown:
            raise BuildError(f"--only names unknown notebooks {unknown}; notebooks of the book: {names}")
        prepare_environment(root, profile)
        checks = check_profile(profile, [n for n in names if not only or n in only])
    except (ParameterError, BuildError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"profile {profile.name!r}")
    for c in checks:
        print(c.report())
    trained = {name: cfg for c in checks for name, cfg in c.trained.items()}
    if trained:
        print("self-trained models (trained: names, from the pretraining parameters):")
        print("\n".join(f"  {name}: {cfg}" for name, cfg in trained.items()))
    wrong = problems(checks)
    if wrong:
        print(f"error: {len(wrong)} problem(s):\n  " + "\n  ".join(wrong), file=sys.stderr)
        return 1
    print("all checks passed: nothing was executed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
