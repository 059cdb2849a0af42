#!/usr/bin/env python3
"""Signed gigstack deliveries for the load benchmark (python3 stdlib only).

Writes one delivery per line, `SIGNATURE<TAB>BODY<LF>`, where SIGNATURE is the
lowercase hex HMAC-SHA256 of BODY under the secret (what X-Gigstack-Signature
carries) and BODY is a compact ~1 KiB `invoice.created` event. Bodies are
ASCII-only compact JSON, so they never hold a raw tab or newline and the Lua
side can split each line on its first tab without any unescaping.

Every delivery has its own event id (`id`), so each one is a new event for the
receiver until the load generator wraps around the file.

    gen_deliveries.py --count 50000 --out deliveries.tsv   # secret from env
    GIGSTACK_WEBHOOK_SECRET=... gen_deliveries.py ...

Prints `count=N body_min=B body_avg=B body_max=B` on stdout for the caller.
startup.py imports `make_body` and `sign` to build its probe delivery.
"""

import argparse
import hashlib
import hmac
import json
import os
import random
import sys

# A few realistic Mexican CFDI clients and products: enough variety that the
# bodies differ in more than their ids, deterministic through the seed.
CLIENTS = [
    ("Acme Distribuciones SA de CV", "ADI010203AB1", "601", "06600"),
    ("Comercializadora del Bajío SA de CV", "CBA990817KL2", "601", "37000"),
    ("María Fernanda López Ruiz", "LORM850612H45", "612", "44100"),
    ("Servicios Integrales Norte S de RL", "SIN120930QW8", "601", "64000"),
    ("Tecnología y Soluciones MX SAPI de CV", "TSM150401ZX3", "601", "03100"),
]
PRODUCTS = [
    ("Licencia anual de software de facturación", "43232408", "E48", 4500.0),
    ("Soporte técnico mensual", "81111811", "E48", 1200.0),
    ("Implementación y capacitación", "80111601", "E48", 3500.0),
    ("Timbrado de CFDI (paquete 1000)", "84111506", "E48", 850.0),
]


def make_body(event_id: str, rng: random.Random, created: int) -> bytes:
    """One gigstack `invoice.created` event; `id` and `type` come first."""
    name, rfc, regime, zip_code = rng.choice(CLIENTS)
    items = []
    subtotal = 0.0
    for product, product_key, unit_key, price in rng.sample(PRODUCTS, 2):
        quantity = rng.randint(1, 5)
        amount = round(quantity * price, 2)
        subtotal += amount
        items.append({
            "description": product,
            "product_key": product_key,
            "unit_key": unit_key,
            "quantity": quantity,
            "unit_price": price,
            "amount": amount,
            "taxes": [{"type": "IVA", "rate": 0.16, "factor": "Tasa", "withholding": False}],
        })
    tax = round(subtotal * 0.16, 2)
    number = rng.randint(1000, 999999)
    invoice_id = f"inv_{number:06d}{rng.randrange(16**6):06x}"
    uuid = "-".join(f"{rng.randrange(16**n):0{n}X}" for n in (8, 4, 4, 4, 12))
    event = {
        "id": event_id,
        "type": "invoice.created",
        "created": created,
        "livemode": False,
        "data": {
            "object": {
                "id": invoice_id,
                "uuid": uuid,
                "series": "A",
                "folio": number,
                "status": "valid",
                "client": {
                    "id": f"cli_{rng.randrange(16**8):08x}",
                    "legal_name": name,
                    "rfc": rfc,
                    "tax_system": regime,
                    "zip": zip_code,
                    "email": "facturacion@example.com",
                },
                "items": items,
                "subtotal": round(subtotal, 2),
                "taxes": tax,
                "total": round(subtotal + tax, 2),
                "currency": "MXN",
                "exchange_rate": 1,
                "payment_form": "03",
                "payment_method": "PUE",
                "use": "G03",
                "pdf_url": f"https://files.gigstack.example/invoices/{invoice_id}.pdf",
                "xml_url": f"https://files.gigstack.example/invoices/{invoice_id}.xml",
                "created_at": created,
            }
        },
    }
    # ensure_ascii: non-ASCII becomes \uXXXX, so no byte of the body is a raw
    # tab or newline (json.dumps escapes control characters anyway).
    return json.dumps(event, separators=(",", ":"), ensure_ascii=True).encode()


def sign(secret: bytes, body: bytes) -> str:
    """X-Gigstack-Signature: lowercase hex HMAC-SHA256(secret, raw body)."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=50000, help="number of deliveries")
    parser.add_argument("--out", required=True, help="output file (SIGNATURE<TAB>BODY lines)")
    parser.add_argument("--secret", default=os.environ.get("GIGSTACK_WEBHOOK_SECRET"),
                        help="HMAC secret (default: $GIGSTACK_WEBHOOK_SECRET)")
    parser.add_argument("--prefix", default="evt_bench_", help="event id prefix")
    parser.add_argument("--seed", type=int, default=1, help="seed for the varied fields")
    args = parser.parse_args()
    if not args.secret:
        parser.error("no secret: pass --secret or set GIGSTACK_WEBHOOK_SECRET")
    if args.count < 1:
        parser.error("--count must be at least 1")

    secret = args.secret.encode()
    rng = random.Random(args.seed)
    created = 1732380000
    sizes = []
    with open(args.out, "wb") as out:
        for i in range(args.count):
            body = make_body(f"{args.prefix}{i:08d}", rng, created + i)
            sizes.append(len(body))
            out.write(sign(secret, body).encode() + b"\t" + body + b"\n")
    print(f"count={args.count} body_min={min(sizes)} "
          f"body_avg={sum(sizes) // len(sizes)} body_max={max(sizes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
