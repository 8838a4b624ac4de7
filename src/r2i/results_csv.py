"""Results CSVs that several processes append to: one row per finished run, written under a file lock.

`r2i sweep` and `r2i bench solve` record each finished run here, with the git commit of the code that produced it, so
that a row stays attributable when the code changes under a long experiment.
"""

from __future__ import annotations

import csv
import fcntl
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path


def append_row(path: Path, row: dict, columns: Sequence[str], key: Callable[[dict], Hashable] | None = None,
               replace: bool = False) -> bool:
    """Append `row` (its `columns`; missing ones blank) to the CSV at `path`; returns whether it was written.

    With `key`, a row whose key a row of the file already has is not written again, unless `replace`: then it takes
    that row's place (a run trained further than it was recorded). The check and the write happen under an exclusive
    lock on the file, so processes appending at the same time never lose or repeat a row. A file written before a
    column was added is rewritten once with today's columns, its old rows blank there.
    """
    columns = tuple(columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", newline="") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        reader = csv.DictReader(f)
        old = list(reader)
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        if key is not None and key(row) in {key(r) for r in old}:
            if not replace:
                return False
            f.seek(0)
            f.truncate()
            writer.writeheader()
            writer.writerows(row if key(r) == key(row) else r for r in old)
            return True
        if reader.fieldnames and tuple(reader.fieldnames) != columns:
            f.seek(0)
            f.truncate()
            writer.writeheader()
            writer.writerows(old)
        if f.tell() == 0:
            writer.writeheader()
        writer.writerow(row)
        return True
