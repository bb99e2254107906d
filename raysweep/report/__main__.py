"""`python -m raysweep.report OUT`: the figures and tables of whatever OUT holds -> OUT/report/."""

from __future__ import annotations

import argparse
import sys

from raysweep import data
from raysweep.errors import InputError
from raysweep.report.build import write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m raysweep.report",
                                     description="Figures and tables of a sweep -> OUT/report/.")
    parser.add_argument("out", help="the sweep's output directory (a path or s3://bucket/prefix)")
    args = parser.parse_args(argv)
    try:
        print(write_report(args.out, size_of=data.train_size))
    except InputError as err:
        parser.error(str(err))  # exit status 2, message on stderr, no traceback
    return 0


if __name__ == "__main__":
    sys.exit(main())
