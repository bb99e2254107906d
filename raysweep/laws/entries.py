"""A fitted law as fits.json holds it: one typed object, with its one JSON form.

`LawEntry` is what the study found for one form of one law on one downstream set: the rows it
used, the inputs it kept or left out, its parameters with their 95 % intervals, its checks (lack
of fit, extrapolation, BIC), its warnings and its status. The entry of a law in fits.json is the
selected form's entry with `selected`, `why_selected` and every candidate under `forms` (each a
LawEntry without those three). `to_json` writes that entry key for key, in the order of FIELDS;
`from_json` reads it back (this version's files and older ones: a key an older entry lacks reads
as None, which every reader takes as "not there"), so the study, the report and `raysweep.fit`
read attributes, never keys. A new field of fits.json is one line in this file's FIELDS and one
attribute of LawEntry.

A None field is not written: fits.json has no key for what a fit did not produce (no `ci` without
a bootstrap, no `warnings` on a law that did not fit, no `status` in `fit --table --inputs`).
Non-finite numbers become null when the document is written (laws/study.py's `finite`).

Left out: typing the checks' own objects (`lack_of_fit`, `extrapolation` per input, `terms` per
input): they stay the mappings laws/checks.py and laws/law.py write, read with their own keys.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping

from raysweep.errors import InputError
from raysweep.laws.form import parse_with_params
from raysweep.laws.law import Law

# fits.json's keys of a law entry, in the order they are written, and what each must hold
FIELDS = {
    "target": "a string",                 # the column fitted (error, loss, ...)
    "n": "an integer",                    # rows used
    "rows_skipped": "an integer",         # rows without a positive target or an input
    "expression": "a string",             # the form as fitted (a left-out term or E removed)
    "inputs_dropped": "a mapping",        # input -> why its term was left out
    "inputs": "a list of strings",        # the inputs the form reads
    "E_left_out": "a string",             # why the floor was left out
    "params": "a mapping",                # parameter -> value (null where not finite)
    "E": "a number",                      # the floor of a sum of power terms
    "terms": "a mapping",                 # input -> {coef, exponent, lambda}: the paper's reading
    "objective": "a number",              # summed Huber loss at the optimum
    "ci": "a mapping",                    # parameter -> [lo, hi], the 95 % bootstrap interval
    "lack_of_fit": "a mapping",           # laws/checks.py's lack_of_fit
    "bic": "a number",                    # laws/candidates.py's bic
    "extrapolation": "a mapping",         # input -> laws/checks.py's extrapolation_check entry
    "warnings": "a list of strings",      # terms the data barely constrain, mixed settings
    "status": "a string",                 # "ok", else why there are no numbers
    "selected": "a string",               # the law's entry only: the form the comparison chose
    "why_selected": "a string",           # ... the rule's reason
    "forms": "a mapping",                 # ... every candidate: form name -> its entry
}
_NUMBER = (numbers.Real,)


@dataclasses.dataclass(frozen=True)
class LawEntry:
    target: str | None = None
    n: int | None = None
    rows_skipped: int | None = None
    expression: str | None = None
    inputs_dropped: dict[str, str] | None = None
    inputs: tuple[str, ...] | None = None
    E_left_out: str | None = None
    params: dict[str, float | None] | None = None
    E: float | None = None
    terms: dict[str, dict] | None = None
    objective: float | None = None
    ci: dict[str, tuple] | None = None
    lack_of_fit: dict | None = None
    bic: float | None = None
    extrapolation: dict[str, dict] | None = None
    warnings: tuple[str, ...] | None = None
    status: str | None = None
    selected: str | None = None
    why_selected: str | None = None
    forms: dict[str, LawEntry] | None = None

    def __post_init__(self):   # one in-memory form whoever built it: tuples, not lists
        for name in ("inputs", "warnings"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.ci is not None:
            object.__setattr__(self, "ci", {k: tuple(v) for k, v in self.ci.items()})

    @property
    def ok(self) -> bool:
        """The form fitted (status ok)."""
        return self.status == "ok"

    def law(self) -> Law:
        """The fitted expression with its parameters' values (a ValueError without them)."""
        if self.expression is None or self.params is None:
            raise ValueError(f"the law for {self.target!r} has no fitted form (status "
                             f"{self.status!r})")
        return Law(parse_with_params(self.expression, self.params), dict(self.params))

    def with_candidates(self, selected: str, why: str, forms: Mapping[str, LawEntry]) -> LawEntry:
        """This form's entry as the law's: the comparison's choice and every candidate."""
        return dataclasses.replace(self, selected=selected, why_selected=why, forms=dict(forms))

    def to_json(self) -> dict:
        out = {}
        for name in FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            if name in ("inputs", "warnings"):
                value = list(value)
            elif name == "ci":
                value = {k: list(v) for k, v in value.items()}
            elif name == "forms":
                value = {k: e.to_json() for k, e in value.items()}
            out[name] = value
        return out

    @classmethod
    def from_json(cls, d, where: str = "a fits.json law entry") -> LawEntry:
        """A fits.json law entry (this version's or an older one's) as a LawEntry; a key it
        lacks reads as None, an unknown key is ignored; a field of the wrong kind is an
        InputError naming WHERE, the field and what was expected."""
        if not isinstance(d, Mapping):
            raise InputError(f"{where}: expected an object, got {type(d).__name__}")
        kept = {name: _checked(d[name], name, where) for name in FIELDS
                if name in d and d[name] is not None}
        if "forms" in kept:
            kept["forms"] = {k: cls.from_json(v, f"{where}.forms.{k}")
                             for k, v in kept["forms"].items()}
        return cls(**kept)


def _checked(value, name: str, where: str):
    """VALUE if it is what FIELDS says NAME holds, else an InputError."""
    expected = FIELDS[name]
    good = {"a string": isinstance(value, str),
            "an integer": isinstance(value, int) and not isinstance(value, bool),
            "a number": isinstance(value, _NUMBER) and not isinstance(value, bool),
            "a mapping": isinstance(value, Mapping),
            "a list of strings": isinstance(value, list)
            and all(isinstance(v, str) for v in value)}[expected]
    if good and name == "params":
        good = all(v is None or isinstance(v, _NUMBER) for v in value.values())
        expected = "a mapping of parameter -> number"
    elif good and name == "ci":
        good = all(isinstance(v, list) and len(v) == 2 for v in value.values())
        expected = "a mapping of parameter -> [lo, hi]"
    if not good:
        raise InputError(f"{where}.{name}: expected {expected}, got {value!r}")
    return value


def entry(x, where: str = "a fits.json law entry") -> LawEntry:
    """X as a LawEntry: one already typed passes through, a mapping is read (from_json)."""
    return x if isinstance(x, LawEntry) else LawEntry.from_json(x, where)


def typed_doc(doc):
    """fits.json's object with every law entry (downstream -> set -> law) a LawEntry; anything
    but an object with a 'downstream' mapping of mappings is handed on as it is, for the
    reader's shape check to refuse."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("downstream"), Mapping):
        return doc
    per_set = {ds: {name: entry(e, f"fits.json downstream.{ds}.{name}") for name, e in laws.items()}
               if isinstance(laws, Mapping) else laws for ds, laws in doc["downstream"].items()}
    return dict(doc) | {"downstream": per_set}


def json_doc(doc: Mapping) -> dict:
    """fits.json's object as JSON: every law entry through LawEntry.to_json."""
    per_set = {ds: {name: entry(e).to_json() for name, e in laws.items()}
               for ds, laws in doc["downstream"].items()}
    return dict(doc) | {"downstream": per_set}
