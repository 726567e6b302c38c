"""Mutations of real alert messages through both decoders (run as a script by
tests/test_decoders.py, so that a crash or a memory blow-up fails the test, not pytest).

Prints one JSON line: mutations tried, outcomes per decoder, disagreements (apart from
the one documented kind, counted on its own), peak RSS.
"""

from __future__ import annotations

import json
import math
import random
import sys

from alert_pipeline.consumer.decode import AlertDecoder
from alert_pipeline.errors import DecodeError
from devtools.factory import AlertFactory
from tests.peak import peak_rss_kb


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[key], b[key]) for key in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


#: Kinds 6 and 7 aim at the measurements, before the cutouts (most of a message's bytes).
HEAD = 1500


def mutate(rng: random.Random, value: bytes) -> bytes:
    data = bytearray(value)
    kind = rng.randrange(8)
    if kind == 0:  # flip bytes
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(5, len(data))] = rng.randrange(256)
    elif kind == 1:  # truncate
        del data[rng.randrange(5, len(data)):]
    elif kind == 2:  # bytes left over
        data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif kind == 3:  # a huge or negative varint (array, string or bytes lengths)
        at = rng.randrange(5, len(data))
        data[at:at + 1] = bytes([0xFF] * rng.randint(1, 9) + [rng.randrange(128)])
    elif kind == 4:  # insert or delete a run
        at = rng.randrange(5, len(data))
        if rng.random() < 0.5:
            del data[at:at + rng.randint(1, 64)]
        else:
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    elif kind == 5:  # another schema id
        data[1:5] = rng.choice([b"\x00\x00\x03\x20", b"\x00\x00\x04\x4c", b"\x00\x00\x01\x2c"])
    elif kind == 6:  # a small negative varint: where a union's branch index stood, a negative index
        data[rng.randrange(5, min(len(data), HEAD))] = rng.choice([0x01, 0x03])
    else:  # an int beyond 32 bits: a 5-byte varint over one byte (an int field, a length, an index)
        at = rng.randrange(5, min(len(data), HEAD))
        data[at:at + 1] = bytes([0x80, 0x80, 0x80, 0x80, rng.randrange(0x10, 0x80)])
    return bytes(data)


def documented(results: dict) -> bool:
    """The one documented difference (README, "What goes in"): a negative union branch
    index, which cavro refuses and fastavro reads as an index from the end of the union."""
    (_, _, cavro_detail) = results["cavro"]
    return results["cavro"][0] == "corrupt-payload" and "is not valid for a union" in cavro_detail


def main(count: int) -> None:
    rng = random.Random(20261123)
    decoders = {name: AlertDecoder(decoder=name) for name in ("fastavro", "cavro")}
    seeds = []
    for index, version in enumerate(("6.0", "9.0", "11.1")):
        factory = AlertFactory(version, seed=700 + index)
        seeds.append(factory.frame(factory.alert(cutout_size=20, n_prv_sources=4)))
    outcomes = {name: {} for name in decoders}
    disagreements = []
    negative_union = 0
    for trial in range(count):
        value = mutate(rng, rng.choice(seeds))
        results = {}
        for name, decoder in decoders.items():
            try:
                results[name] = ("ok", decoder.decode(value), "")
            except DecodeError as exc:
                results[name] = (exc.reason, None, str(exc))
            outcomes[name][results[name][0]] = outcomes[name].get(results[name][0], 0) + 1
        (tag_a, alerts_a, _), (tag_b, alerts_b, _) = results["fastavro"], results["cavro"]
        if tag_a != tag_b or (tag_a == "ok" and not same(alerts_a, alerts_b)):
            if documented(results):
                negative_union += 1
            else:
                disagreements.append({"trial": trial, "fastavro": tag_a, "cavro": tag_b})
    peak_mb = peak_rss_kb() / 1024
    print(json.dumps({"count": count, "outcomes": outcomes, "disagreements": disagreements[:20],
                      "disagreement_count": len(disagreements), "negative_union_index": negative_union,
                      "peak_rss_mb": peak_mb}))


if __name__ == "__main__":
    main(int(sys.argv[1]))
