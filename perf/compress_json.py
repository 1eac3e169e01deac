#!/usr/bin/env python3
"""Write the `compress` scenario's response body: about 100 KiB of API-like JSON (an
order list with customers, addresses, line items, free text and timestamps), generated
from a fixed seed so every run serves the same bytes. Repeated bytes would compress far
better than real responses do.

    python3 perf/compress_json.py OUT [BYTES]
"""

import json
import random
import sys

WORDS = ("alpha beta delivery express parcel warehouse invoice refund priority standard "
         "fragile returned pending shipped customer support gift wrapped discount coupon "
         "weekend morning evening north south east west central harbour station market "
         "garden river hill bridge lane avenue road square park view court").split()
CITIES = ["Lisbon", "Porto", "Madrid", "Lyon", "Turin", "Ghent", "Leeds", "Cork", "Bergen",
          "Tampere", "Gdansk", "Brno", "Graz", "Basel", "Utrecht", "Aarhus"]
SKUS = [f"SKU-{n:05d}" for n in range(400)]


def order(rng, index):
    items = []
    for _ in range(rng.randint(1, 5)):
        items.append({
            "sku": rng.choice(SKUS),
            "name": " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 4))).title(),
            "quantity": rng.randint(1, 9),
            "unit_price": round(rng.uniform(0.5, 250.0), 2),
            "tax_rate": rng.choice([0.0, 0.06, 0.13, 0.23]),
        })
    first = rng.choice(["ana", "joao", "marta", "pierre", "lena", "sven", "ola", "ines"])
    return {
        "id": 100000 + index * 7 + rng.randint(0, 6),
        "uuid": "%08x-%04x-4%03x-%04x-%012x" % (rng.getrandbits(32), rng.getrandbits(16),
                                                 rng.getrandbits(12), rng.getrandbits(16),
                                                 rng.getrandbits(48)),
        "created_at": "2026-%02d-%02dT%02d:%02d:%02d.%03dZ" % (
            rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23), rng.randint(0, 59),
            rng.randint(0, 59), rng.randint(0, 999)),
        "status": rng.choice(["pending", "paid", "shipped", "delivered", "refunded"]),
        "customer": {
            "id": rng.randint(1, 99999),
            "email": f"{first}.{rng.randint(1, 9999)}@example.{rng.choice(['com', 'org', 'net'])}",
            "address": {"street": f"{rng.randint(1, 300)} {rng.choice(WORDS).title()} "
                                  f"{rng.choice(['Street', 'Road', 'Avenue', 'Lane'])}",
                        "city": rng.choice(CITIES), "postcode": f"{rng.randint(1000, 99999)}"},
        },
        "items": items,
        "total": round(sum(i["quantity"] * i["unit_price"] for i in items), 2),
        "note": " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 12))) or None,
        "gift": rng.random() < 0.1,
    }


def main():
    out = sys.argv[1]
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 100 * 1024
    rng = random.Random(22)
    orders = []
    text = ""
    while True:
        orders.append(order(rng, len(orders)))
        candidate = json.dumps({"orders": orders, "next_page": None}, separators=(",", ":"))
        if len(candidate) > size:
            break
        text = candidate
    with open(out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
