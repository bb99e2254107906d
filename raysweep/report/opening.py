"""The report's opening: what the study found, per downstream set -- the boundary in sentences
(raysweep.report.findings), the map of where distilling helps with the boundary drawn on it
(figures_map), a line per slice, then the laws and what more compute would buy."""

from __future__ import annotations

from functools import partial

from raysweep.report.blocks import figure, guarded
from raysweep.report.figures import short
from raysweep.report.figures_map import fig_findings_map
from raysweep.report.findings import Findings, findings, share
from raysweep.report.render import Heading, Paragraph, Table

MAP_CAPTION = ("Where distilling from the smaller teachers helped on {ds}: each cell a measured "
               "(Dp, Df) point of a slice, coloured by the seed mean of E_plain - E_distilled "
               "(blue: distilling helped; red: plain training won). Black diamonds: D**p where "
               "the fitted laws cross inside the measured Dp, with its 95 % interval; open "
               "circles: where the measured seed means turn, with theirs; an arrow: an interval "
               "end or value beyond the axis, with its number.")


def findings_section(inputs: dict) -> list:
    """What the study found, first: per downstream set, the boundary in sentences, the map, a
    line per slice, then the laws and what more compute would buy."""
    sizes = inputs.get("sizes") or {}
    every = findings(inputs["fits"], inputs["boundary"], inputs["adaptive"], sizes)
    if not every:
        return []
    blocks = [Heading("What the study found")]
    for f in every:
        blocks += [Heading(f.downstream, 3), *map(Paragraph, f.boundary)]
        blocks += guarded(f"The map of {f.downstream}", partial(findings_map, inputs, f, sizes))
        blocks += [*map(Paragraph, f.laws + f.compute)]
    return blocks


def findings_map(inputs: dict, f: Findings, sizes: dict) -> list:
    ok = {stage: [r for r in inputs["rows"] if r.get("downstream") == f.downstream
                  and r["stage"] == stage and r["status"] == "ok" and r.get("error") is not None]
          for stage in ("finetune", "distill")}
    if not ok["distill"]:
        return []
    total = sizes.get(f.downstream)

    def df_label(df) -> str:
        return f"Df {short(df)}" + (f"\n({share(df, total)})" if total else "")
    rows = [[label, text] for label, text in f.slices]
    return [*figure(f"{f.downstream}-findings-map", MAP_CAPTION.format(ds=f.downstream),
                    partial(fig_findings_map, ok["finetune"], ok["distill"], f.rows, df_label,
                            f"{f.downstream}: where distilling from smaller teachers helps"),
                    wide=True),
            Table(f"Per slice: where distilling helps and plain training wins on {f.downstream}"
                  " (Dp in pretraining images [95 %])", ["slice", "what the numbers show"],
                  rows)] if rows else []
