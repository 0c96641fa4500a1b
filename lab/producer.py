"""Steady-rate Kafka producers for the lab (librdkafka through confluent-kafka).

Sends ``--rate`` messages per second in total, spread over ``--producers`` client instances
(one TCP connection each), to random partitions of ``--topic``. Every message carries a
unique ``message-id`` header. One line per message goes to ``--out`` (tab-separated):
message id, producer, partition, offset, error, send and delivery instants in
CLOCK_MONOTONIC nanoseconds (the broker's and the kernel tracer's clock).

Deterministic for a given ``--seed`` (sizes, partitions, payload kinds), not in timing.
"""

from __future__ import annotations

import argparse
import functools
import random
import signal
import sys
import time

from confluent_kafka import Producer

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", default="lab")
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--rate", type=float, default=1000.0, help="messages per second, all producers together")
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--producers", type=int, default=4)
    ap.add_argument("--acks", default="mixed", help="1, all, or mixed (alternating per producer)")
    ap.add_argument("--compression", default="none", choices=(*CODECS, "mixed"))
    ap.add_argument("--min-bytes", type=int, default=200)
    ap.add_argument("--max-bytes", type=int, default=4096)
    ap.add_argument("--linger-ms", type=float, default=2.0)
    ap.add_argument("--header", default="message-id")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    rng = random.Random(args.seed)
    stop = False

    def on_signal(_sig, _frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    producers = []
    for i in range(args.producers):
        acks = args.acks if args.acks != "mixed" else ("all" if i % 2 else "1")
        codec = args.compression if args.compression != "mixed" else CODECS[i % len(CODECS)]
        conf = {
            "bootstrap.servers": args.bootstrap,
            "client.id": f"lab-producer-{i}",
            "acks": acks,
            "compression.type": codec,
            "linger.ms": args.linger_ms,
            "enable.idempotence": acks == "all",
            "message.timeout.ms": int((args.duration + 30) * 1000),
        }
        producers.append(Producer(conf))
    for p in producers:  # connected, with metadata, before the clock starts
        p.list_topics(args.topic, timeout=30)

    out = open(args.out, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    out.write("# kforensics lab producer log v1\n")
    out.write("message_id\tproducer\tpartition\toffset\terror\tsend_ns\tdelivered_ns\n")
    sent_at: dict[str, int] = {}

    def report(producer: int, mid: str, err, msg) -> None:
        # delivery reports carry no headers: the id comes with the callback
        now = time.monotonic_ns()
        out.write(
            f"{mid}\t{producer}\t{msg.partition()}\t{msg.offset()}\t{err.name() if err else ''}\t"
            f"{sent_at.pop(mid)}\t{now}\n"
        )

    text = b"kafka-forensics lab payload " * 200
    interval_ns = int(1e9 / args.rate)
    start = time.monotonic_ns()
    end = start + int(args.duration * 1e9)
    seq = 0
    next_at = start
    while not stop:
        now = time.monotonic_ns()
        if now >= end:
            break
        if now < next_at:
            for p in producers:
                p.poll(0)
            time.sleep(min(next_at - now, 5_000_000) / 1e9)
            continue
        i = seq % len(producers)
        size = rng.randint(args.min_bytes, args.max_bytes)
        value = text[:size] if rng.random() < 0.5 else rng.randbytes(size)
        mid = f"m{args.seed}-{i}-{seq}"
        partition = rng.randrange(args.partitions)
        sent_at[mid] = time.monotonic_ns()
        while True:
            try:
                producers[i].produce(
                    args.topic,
                    value=value,
                    partition=partition,
                    headers=[(args.header, mid.encode())],
                    on_delivery=functools.partial(report, i, mid),
                )
                break
            except BufferError:
                producers[i].poll(0.01)
        seq += 1
        next_at += interval_ns
    left = sum(p.flush(30) for p in producers)
    out.close()
    print(f"sent {seq} messages, {left} undelivered", file=sys.stderr)
    return 0 if left == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
