#!/usr/bin/env python3
"""The cold workload of make bench: events in which every customer appears once, each event
the customer's first (no state of it in Redis or in any worker yet).

scripts/produce_events.py with one change: its event stream is scripts/churn_data.py's,
drawn over a pool of --customers customers (make it several times --count), keeping only
each customer's first event, until --count events, all about distinct customers. The events
are what a customer's first event always is (a PROFILE_UPDATE 75 % of the time, each known
attribute carried with probability 0.92); every other option, the summary line and the exit
status are produce_events.py's. Deterministic for a given (--count, --customers, --seed).

  python bench/cold_events.py --bootstrap 127.0.0.1:24092 --topic bench-cold \\
      --count 300000 --customers 1000000 --seed 2
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import churn_data  # noqa: E402
import produce_events  # noqa: E402

_all_events = churn_data.events


def first_events(n, customers_n, seed=0, start_ms=churn_data.DEFAULT_START_MS):
    """The first event of each customer of churn_data.events(None, customers_n, seed), in
    stream order, n of them (n=None: until the pool's customers run out of first events)."""
    if n is not None and n > customers_n:
        raise ValueError("%d events of distinct customers need a pool of at least as many "
                         "customers (--customers %d)" % (n, customers_n))
    seen = set()
    for rec in _all_events(None, customers_n, seed, start_ms):
        cid = rec["customer_id"]
        if cid in seen:
            continue
        seen.add(cid)
        yield rec
        if len(seen) == (customers_n if n is None else n):
            return


if __name__ == "__main__":
    churn_data.events = first_events  # produce_events.main looks it up when it starts
    sys.exit(produce_events.main())
