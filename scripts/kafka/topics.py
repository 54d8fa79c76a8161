"""Create the local stack's Kafka topics, idempotently, and wait for their leaders.

Used by scripts/dev-stack:  topics.py BOOTSTRAP "name:partitions,name:partitions" [REPLICAS]
Existing topics are left as they are (a differing partition count is reported).
"""

import sys
import time

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

TIMEOUT_S = 30


def parse(spec):
    topics = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, sep, parts = item.partition(":")
        if not name or not sep or not parts.isdigit() or int(parts) < 1:
            sys.exit(f"topics: bad entry {item!r} in TOPICS (want name:partitions)")
        topics[name] = int(parts)
    return topics


def main():
    if len(sys.argv) not in (3, 4) or (len(sys.argv) == 4 and not sys.argv[3].isdigit()):
        sys.exit("usage: topics.py BOOTSTRAP name:partitions[,name:partitions...] [REPLICAS]")
    bootstrap, wanted = sys.argv[1], parse(sys.argv[2])
    replicas = int(sys.argv[3]) if len(sys.argv) == 4 else 1
    if not wanted:
        return
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(n, p, replicas) for n, p in wanted.items()],
        operation_timeout=TIMEOUT_S, request_timeout=TIMEOUT_S)
    state = {}
    for name, fut in futures.items():
        try:
            fut.result()
            state[name] = "created"
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                sys.exit(f"topics: cannot create {name}: {e.args[0].str()}")
            state[name] = "exists"

    # A created topic answers only once every partition has a leader.
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        md = admin.list_topics(timeout=TIMEOUT_S).topics
        pending = [n for n in wanted
                   if n not in md or md[n].error is not None
                   or any(p.leader < 0 for p in md[n].partitions.values())]
        if not pending:
            break
        if time.monotonic() > deadline:
            sys.exit(f"topics: no leader after {TIMEOUT_S}s for: {', '.join(pending)}")
        time.sleep(0.2)

    for name, parts in wanted.items():
        have = len(md[name].partitions)
        note = "" if have == parts else f" (TOPICS asks for {parts})"
        print(f"  {name}: {have} partitions, {state[name]}{note}")


if __name__ == "__main__":
    main()
