"""The tamper-evident journal (R11, DESIGN §7): records, hash chain, stores, writer, readers.

Parts follow what carries over to another database:

- `record`: the record and its canonical text (format versions), `chain`: hash chain and signed
  checkpoints — backend-independent, shared byte for byte by every store and archive;
- `store`: the protocol a backend implements; `sqlite` and `postgres` implement it;
- `writer`: the group-commit writer (`Journal`) over any store;
- `verify`, `query` (export, stats), `archive` (archives and retention): over the protocol;
- `target`: which store a config or a command line names.

Storage only: nothing here imports mitmproxy or click.
"""

from proxy.journal.record import (
    JournalError,
    JournalFormatError,
    JournalWriteError,
    Record,
    sidecar_record,
    utc_now,
)
from proxy.journal.writer import Journal

__all__ = ["Journal", "JournalError", "JournalFormatError", "JournalWriteError", "Record", "sidecar_record",
           "utc_now"]
