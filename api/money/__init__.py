"""What was paid and where it is: the one billed yes / no / maybe value (billing.py), the journal of requests,
tasks and paid answers (journal.py, on db.py: the one SQLite helper), the result cache (store.py), the
never-pay-twice path around the service's calls (resumable.py, with request_lock.py: one creation across
processes), the price table (pricing.py), and the one kind of file lock they share (locks.py: filelock's
operating-system lock). The daily limit's ledger and its report are the `api.ledger` command beside this
package."""
