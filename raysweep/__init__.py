"""raysweep: scaling-law studies of visual transfer learning, as a distributed sweep on Ray.

The flow lives in `raysweep.grid` (sweep -> trials -> Ray -> results -> fit -> boundary -> report);
every other module does one job and, except `executor`, runs without Ray.
"""

__version__ = "0.1.0"
