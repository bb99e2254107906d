"""The report's tables of the fitted laws, in the spirit of the paper's Tables 1, 2 and 4, read
through each law's own form (its expression and parameters in fits.json): the exponents, the
coefficients and floors, one law fitted to a user's table, and the candidate forms side by side.

Columns come from the parameters the shown forms have: the paper's symbols first (alpha for Dp, ...,
with lambda = 1/coef beside each coefficient, as the paper writes eq. 1: D^-alpha / lambda; its
interval is the coef interval inverted), then any other parameter by name.
"""

from __future__ import annotations

from raysweep.laws.catalogue import LAWS, SYMBOLS
from raysweep.laws.entries import LawEntry, entry
from raysweep.laws.form import COEF, EXPONENT, Form, parse_with_params
from raysweep.report.numbers import DASH, fmt, with_ci
from raysweep.report.render import Table

BY_EXPONENT = {s.exponent: (k, s) for k, s in SYMBOLS.items()}   # alpha -> ("dp", Symbol)
BY_COEF = {s.coef: (k, s) for k, s in SYMBOLS.items()}           # A -> ("dp", Symbol)


def _lambda(coef: float | None, ci) -> str:
    """lambda = 1/coef with the coef interval inverted."""
    lam = 1.0 / coef if coef else None
    inverted = [1.0 / ci[1], 1.0 / ci[0]] if ci and len(ci) == 2 and all(ci) else None
    return f"lambda {with_ci(lam, inverted)}"


def _floor(law: LawEntry) -> str:
    """E with its interval, or why the law has none (raysweep.laws.study leaves it out)."""
    if law.E_left_out is not None:
        return "left out: no floor in the rows"
    return with_ci(law.E, (law.ci or {}).get("E"))


def law_rows(fits: dict):
    """(downstream, law name, LAW) in a fixed order: downstream sets sorted, laws as in LAWS;
    an entry given as a mapping is read as a LawEntry."""
    for ds, laws in sorted(fits.get("downstream", {}).items()):
        for name in LAWS:
            if name in laws:
                yield ds, name, entry(laws[name])


def _form(law: LawEntry) -> Form | None:
    if not law.ok or law.expression is None:
        return None
    return parse_with_params(law.expression, law.params)


def _columns(fits: dict, roles: tuple[str, ...]) -> list[str]:
    """The parameters of ROLES over every shown law, the paper's symbols first."""
    found: list[str] = []
    for _, _, law in law_rows(fits):
        form = _form(law)
        found += [p for p in (form.params if form else ()) if form.roles[p] in roles
                  and p not in found]
    paper = [s.exponent for s in SYMBOLS.values()] + [s.coef for s in SYMBOLS.values()]
    return sorted(found, key=lambda p: (paper.index(p) if p in paper else len(paper)))


def _exponent_label(p: str) -> str:
    return f"{p} ({BY_EXPONENT[p][1].measures})" if p in BY_EXPONENT else p


def _coef_label(p: str) -> str:
    if p in BY_COEF:
        s = BY_COEF[p][1]
        return f"coef of {s.measures} ({s.scale} = 1/coef)"
    return p


def _not_fitted(law: LawEntry, width: int) -> list[str]:
    return [f"not fitted: {law.status}"] + [DASH] * (width - 1)


def exponents_table(fits: dict) -> Table:
    cols = _columns(fits, (EXPONENT,))
    header = ["downstream", "law", "form", "n"] + [_exponent_label(p) for p in cols]
    rows = []
    for ds, name, law in law_rows(fits):
        label = [ds, f"{name} ({LAWS[name].equation})", law.selected or "paper", fmt(law.n)]
        if _form(law) is None:
            rows.append(label + _not_fitted(law, max(len(cols), 1)))
            continue
        values, ci = law.params, law.ci or {}
        rows.append(label + [with_ci(values[p], ci.get(p)) if p in values else DASH
                             for p in cols])
    return Table("Fitted exponents with 95 % intervals (paper Tables 1, 2)", header, rows)


def coefficients_table(fits: dict) -> Table:
    cols = _columns(fits, (COEF, "free"))
    header = ["downstream", "law", "E (irreducible)"] + [_coef_label(p) for p in cols]
    rows = []
    for ds, name, law in law_rows(fits):
        form = _form(law)
        if form is None:
            rows.append([ds, name] + _not_fitted(law, len(cols) + 1))
            continue
        values, ci = law.params, law.ci or {}
        cells = [DASH if p not in values else
                 f"{with_ci(values[p], ci.get(p))}; {_lambda(values[p], ci.get(p))}"
                 if p in BY_COEF else with_ci(values[p], ci.get(p)) for p in cols]
        floor = _floor(law) if form.floor or law.E_left_out is not None else DASH
        rows.append([ds, name, floor] + cells)
    return Table("Fitted coefficients with 95 % intervals (paper Table 4)", header, rows)


def law_table(law: LawEntry) -> Table:
    """One law fitted to a user's table (`raysweep.fit --table`), intervals where bootstrapped."""
    ci = law.ci or {}
    form = parse_with_params(law.expression, law.params)
    terms = law.terms
    if terms:  # the paper's reading: a row per input
        rows = [["E", "", _floor(law), ""]] + [
            [k, with_ci(t["exponent"], ci.get(symbol_of(form, k, EXPONENT))),
             with_ci(t["coef"], ci.get(symbol_of(form, k, COEF))), fmt(t["lambda"])]
            for k, t in terms.items()]
        header = ["term", "exponent", "coef / value", "lambda = 1/coef"]
    else:
        rows = [[p, form.roles[p], with_ci(v, ci.get(p))] for p, v in law.params.items()]
        header = ["parameter", "role", "value"]
    return Table(f"{law.target} = {law.expression}   (n = {law.n}, "
                 f"summed Huber loss {law.objective:.6g})", header, rows)


def symbol_of(form: Form, name: str, role: str) -> str | None:
    """The parameter of ROLE (coef or exponent) in the term of input NAME of a paper-like form."""
    for t in form.power_sum.terms:
        if t.powers[0].inputs[0][0] == name:
            return t.coef if role == COEF else t.powers[0].exponent
    return None


def _worst_ratio(law: LawEntry) -> str:
    """The largest held-out MAPE over its noise floor across the inputs (1 = as good as noise)."""
    ratios = [v["mape"] / v["noise_floor"] for v in (law.extrapolation or {}).values()
              if v.get("mape") is not None and v.get("noise_floor")]
    return fmt(max(ratios)) if ratios else DASH


def candidates_table(fits_or_laws: dict) -> Table:
    """Every candidate form of every law side by side: the selected one marked, its parameters,
    objective, BIC, lack of fit and worst extrapolation against the noise floor."""
    laws = fits_or_laws.get("downstream", fits_or_laws)
    header = ["downstream", "law", "form", "selected", "parameters", "Huber loss", "BIC",
              "lack of fit p", "extrapolation / noise floor (worst input)", "expression"]
    rows = []
    for ds, per_law in sorted(laws.items()):
        for name, law in per_law.items():
            law = entry(law)
            for form_name, one in (law.forms or {}).items():
                rows.append([ds, name, form_name, "yes" if form_name == law.selected else ""]
                            + _candidate_cells(one))
    return Table("Candidate forms side by side (laws/candidates.py selects one per law)", header,
                 rows or [[DASH] * (len(header) - 1) + ["no candidates"]])


def _candidate_cells(one: LawEntry) -> list[str]:
    """Parameters, Huber loss, BIC, lack-of-fit p, worst extrapolation and expression of one
    candidate form (dashes and its status where it did not fit)."""
    ok = one.ok
    lof = one.lack_of_fit or {}
    return [str(len(one.params or {})) if ok else DASH, fmt(one.objective) if ok else DASH,
            fmt(one.bic) if ok else DASH, fmt(lof.get("p")) if ok else DASH,
            _worst_ratio(one) if ok else f"not fitted: {one.status}",
            one.expression if one.expression is not None else DASH]
