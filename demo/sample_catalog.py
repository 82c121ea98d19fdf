"""A deterministic sample catalog for a Bangladeshi grocery chain: Bangla and English names."""

import csv
import random
from pathlib import Path

# (English, Bangla, unit, price range in taka, weighed)
GOODS = [
    ("Rice", "চাল", "kg", (60, 120), True),
    ("Lentils", "মসুর ডাল", "kg", (110, 160), True),
    ("Soybean oil", "সয়াবিন তেল", "ltr", (160, 200), False),
    ("Sugar", "চিনি", "kg", (120, 150), True),
    ("Salt", "লবণ", "pcs", (35, 45), False),
    ("Flour", "আটা", "kg", (55, 75), True),
    ("Onion", "পেঁয়াজ", "kg", (50, 120), True),
    ("Potato", "আলু", "kg", (25, 60), True),
    ("Tea", "চা পাতা", "pcs", (90, 450), False),
    ("Milk powder", "গুঁড়া দুধ", "pcs", (350, 900), False),
    ("Biscuits", "বিস্কুট", "pcs", (10, 120), False),
    ("Soap", "সাবান", "pcs", (40, 110), False),
    ("Eggs", "ডিম", "pcs", (12, 15), False),
    ("Turmeric", "হলুদ গুঁড়া", "pcs", (40, 180), False),
    ("Chili powder", "মরিচ গুঁড়া", "pcs", (40, 180), False),
    ("Hilsa fish", "ইলিশ মাছ", "kg", (900, 1800), True),
]
BRANDS = ["Pran", "ACI", "Teer", "Radhuni", "Fresh", "Square", "Bashundhara", "Meghna", "Aarong", "Ispahani"]
SIZES = ["250g", "500g", "1kg", "2kg", "5kg", "1L", "2L", "5L", "Family pack", "Mini"]


def sample_products(count: int = 2400, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        english, bangla, unit, (lo, hi), weighed = GOODS[i % len(GOODS)]
        brand = BRANDS[(i // len(GOODS)) % len(BRANDS)]
        size = SIZES[(i // (len(GOODS) * len(BRANDS))) % len(SIZES)]
        price = rng.randint(lo * 100, hi * 100)
        rows.append({
            "sku": f"{english[:4].upper().replace(' ', '')}-{i:05d}",
            "name": f"{brand} {bangla} {english} {size}" if i % 2 else f"{bangla} ({brand} {english}) {size}",
            "price": f"{price // 100}.{price % 100:02d}",
            "barcode": f"890{rng.randrange(10**9, 10**10)}",
            "unit": unit,
            "vat_rate": "0" if weighed else rng.choice(["5", "7.5", "15"]),
            "active": "true",
        })
    return rows


def write_catalog_csv(path: Path, count: int = 2400) -> list[dict]:
    rows = sample_products(count)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows
