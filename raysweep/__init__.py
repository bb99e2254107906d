"""raysweep: scaling-law studies of visual transfer learning, as a distributed sweep on Ray.

The flow lives in `raysweep.grid` (sweep -> trials -> Ray -> results -> fit -> boundary -> report);
one package per stage of it, imports running one way (docs/design.md): sweep, data, train, run,
store, laws, report, adaptive, hparams. Ray is imported only where Tune runs are built (run/).
"""

__version__ = "0.1.0"
