"""Blind, fast mutation sweep of one parser (no coverage feedback, no atheris needed): random
bit flips, cuts, duplicated spans and hostile tokens (huge numbers, 0xffffffff length fields)
in real seeds, for SECONDS. Each distinct failure is saved to OUT/sweep-<kind>-<n>.bin.

    python fuzz/mutate_sweep.py KIND [SEED] [SECONDS] [OUT]
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fuzz.harness import parse_bytes, problems, scratch, seeds  # noqa: E402

TOKENS = [b"9" * 25, b"-", b"\xff\xff\xff\xff", b"\n", b"\t", b"0x" + b"f" * 20, b"\x00", b"1e999", b"nan"]
WORDS = [b"\x7f\xff\xff\xff", b"\x80\x00\x00\x00", b"9999"]


def mutate(rng: random.Random, data: bytes) -> bytes:
    d = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if not d:
            break
        i, op = rng.randrange(len(d)), rng.randrange(6)
        if op == 0:
            d[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            d[i:i] = rng.choice(TOKENS)
        elif op == 2:
            del d[i : i + rng.randint(1, 64)]
        elif op == 3:
            j = min(len(d), i + rng.randint(1, 256))
            d[j:j] = d[i:j]
        elif op == 4:
            d[i] = rng.randrange(256)
        else:
            d[i : i + 4] = rng.choice(WORDS)
    return bytes(d)


def main() -> int:
    kind = sys.argv[1]
    rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
    out = Path(sys.argv[4]) if len(sys.argv) > 4 else Path("/tmp/kforensics-fuzz")
    out.mkdir(parents=True, exist_ok=True)
    files = [f.read_bytes() for f in seeds(kind)[:20]]
    end, tried, found = time.time() + seconds, 0, {}
    while time.time() < end:
        data = mutate(rng, rng.choice(files))
        with scratch() as w:
            try:
                bad = problems(parse_bytes(kind, data, Path(w), budget_s=10))
            except BaseException as exc:  # noqa: BLE001 - a hang escapes as harness.Hang
                bad = [f"{type(exc).__name__}: {exc}"]
        tried += 1
        if bad and bad[0][:60] not in found:
            found[bad[0][:60]] = data
            (out / f"sweep-{kind}-{len(found)}.bin").write_bytes(data)
            print("FOUND", bad[0][:200], flush=True)
    print(f"{kind}: {tried} inputs, {len(found)} distinct failures")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
