"""What a command resumes from: the trials OUT already holds results of, and what it must say
first about records made under an earlier id scheme or by other code.

Before anything runs, OUT's records are read once and checked:
- records of an earlier id scheme (raysweep.sweep.identity) may be this sweep's trials under
  other ids. Neither re-running them all nor fitting them beside their new twins is right, so
  the command stops (InputError, exit 2) until `--old-ids` chooses: `adopt` files each one whose
  config, resolved with this code's defaults, is a trial, under its new id (a new record and a
  copy of its checkpoint; the old files stay), `ignore` leaves them unused and the trials run
  again. The choice is kept in OUT (layout.ID_SCHEMES), so later commands need no flag;
- records made by other code (raysweep.store.provenance) are named in one line, how many and
  which; they stay results unless `--other-code rerun` runs this command's ones again. Records
  of a newer raysweep stop the command until `--other-code keep` or `rerun` says which.
Nothing is deleted; only a re-run trial's record is replaced, by its new one.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
from collections import Counter
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from raysweep.errors import InputError
from raysweep.store import layout, provenance, results, storage
from raysweep.sweep import identity

OLD_IDS = ("adopt", "ignore")
OTHER_CODE = ("keep", "rerun")


@dataclasses.dataclass
class Found:
    table: pa.Table     # the records of this id scheme, after any adoption
    done: set[str]      # trial ids that need no run
    rerun: set[str]     # finished trials this command runs again (--other-code rerun)


def check(out: str, planned: set[str], old_ids: str | None = None,
          other_code: str | None = None, echo: Callable[[str], None] = print) -> Found:
    """Read OUT once, settle its records of an earlier id scheme and say which were made by
    other code; PLANNED: the ids this command may run."""
    table = results.read_all(out)
    legacy = [r for r in table.to_pylist() if r["id_scheme"] < identity.SCHEME]
    if legacy:
        choice = old_ids_choice(out, len(legacy), old_ids)
        if choice == "adopt":
            echo(adopt(out, legacy, set(table["trial_id"].to_pylist())))
            table = results.read_all(out)
        else:
            echo(f"{len(legacy)} records of id scheme {legacy[0]['id_scheme']} in {out}/results "
                 f"stay there unused (--old-ids ignore): their trials run under new ids")
    table = table.filter(pc.equal(table["id_scheme"], identity.SCHEME))
    rerun = other_code_rerun(table, planned, other_code, echo)
    return Found(table, results.finished_ids(table) - rerun, rerun)


def old_ids_choice(out: str, n: int, given: str | None) -> str:
    """--old-ids, or the choice an earlier command kept in OUT; none: InputError."""
    kept = None
    if storage.exists(out, layout.ID_SCHEMES):
        kept = json.loads(storage.read_bytes(out, layout.ID_SCHEMES))["old_ids"]
    if given is None and kept is None:
        raise InputError(
            f"{out} holds {n} results whose trial ids were made by an earlier id scheme "
            f"(before ids hashed every default); this raysweep names trials by id scheme "
            f"{identity.SCHEME}, so they are neither reused nor mixed in unasked. Choose "
            f"--old-ids adopt (file each under its new id where its config, with this code's "
            f"defaults, is a trial: it counts as done; the old files stay) or --old-ids ignore "
            f"(keep them in OUT unused; the trials run again). Nothing was started or written")
    if given is not None and given != kept:
        when = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        doc = {"old_ids": given, "id_scheme": identity.SCHEME, "decided": when}
        storage.write_bytes(out, layout.ID_SCHEMES, json.dumps(doc).encode())
    return given or kept


def adopt(out: str, legacy: list[dict], present: set[str]) -> str:
    """File every ok or diverged LEGACY record that rekeys under its new id (unless one is
    PRESENT), with a copy of its checkpoint; what was done, as one line."""
    mapped = identity.rekey({r["trial_id"]: json.loads(r["config"]) for r in legacy})
    filed = 0
    for r in legacy:
        if r["trial_id"] not in mapped or r["status"] not in ("ok", "diverged"):
            continue
        new_id, config = mapped[r["trial_id"]]
        if new_id in present:
            continue
        note = f"adopted from trial {r['trial_id']} of id scheme {r['id_scheme']}"
        results.write(out, {**r, "trial_id": new_id, "config": json.dumps(config, sort_keys=True),
                            "id_scheme": identity.SCHEME,
                            "message": "; ".join(filter(None, [r["message"], note]))})
        copy_checkpoint(out, r["trial_id"], new_id)
        filed += 1
    left = len(legacy) - len(mapped)
    return (f"{len(legacy)} records of an earlier id scheme in {out}/results: {filed} adopted now "
            f"under their new ids (--old-ids adopt; the old files stay)"
            + (f", {left} not (a prerequisite without a record)" if left else ""))


def copy_checkpoint(out: str, old: str, new: str) -> None:
    src, dst = layout.checkpoint(old), layout.checkpoint(new)
    if storage.exists(out, src) and not storage.exists(out, dst):
        storage.write_bytes(out, dst, storage.read_bytes(out, src))


def other_code_rerun(table: pa.Table, planned: set[str], choice: str | None,
                     echo: Callable[[str], None]) -> set[str]:
    """Say, in one line, which of TABLE's records other code made; the planned trials among
    them to run again (--other-code rerun), else none. A newer raysweep's: InputError, unless
    CHOICE says what to do."""
    current = provenance.current()
    other = [(r["trial_id"], provenance.of_row(r)) for r in table.to_pylist()]
    other = [(t, f) for t, f in other if f.key != current.key]
    if not other:
        return set()
    counts = Counter(f.label() for _, f in other)
    which = "; ".join(f"{n} by {label}" for label, n in counts.most_common())
    newer = {f.version for _, f in other if version(f.version) > version(current.version)}
    if newer and choice is None:
        raise InputError(
            f"{len(other)} results in OUT were made by a newer raysweep ({', '.join(sorted(newer))}"
            f") than this one ({current.version}): upgrade raysweep, or choose --other-code keep "
            f"(use them as they are) or --other-code rerun (run this command's ones again with "
            f"this version, replacing their records). Nothing was started or written")
    rerun = {t for t, _ in other if t in planned} if choice == "rerun" else set()
    action = (f"{len(rerun)} of them run again (--other-code rerun)" if choice == "rerun" else
              "they are used as they are; --other-code rerun runs them again")
    echo(f"{len(other)} results in OUT were made by other code than this "
         f"({current.label()}): {which}; {action}")
    return rerun


def version(text: str) -> tuple[int, ...]:
    """'0.10.2rc1' -> (0, 10, 2): enough to tell an older raysweep from a newer one."""
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])
