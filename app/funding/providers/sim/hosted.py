"""The simulator's hosted payment page: plain HTML, the way a PSP's checkout looks to a browser."""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import urlencode

from litestar import Response
from litestar.response import Redirect


def luhn_ok(number: str) -> bool:
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def brand(number: str) -> str:
    return {"4": "Visa", "5": "Mastercard", "3": "Amex"}.get(number[:1], "Card")


# --- the hosted page ---------------------------------------------------------------------------------

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>PaySim checkout</title>
<style>body{{font-family:system-ui,sans-serif;max-width:26rem;margin:2rem auto;padding:0 1rem}}
label{{display:block;margin:.8rem 0 .2rem}}input{{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}}
button{{margin-top:1rem;padding:.6rem 1rem;font-size:1rem}}.error{{color:#b00020}}.muted{{color:#666}}</style>
</head><body><h1>PaySim checkout</h1>
<p>Pay <strong>{amount} {currency}</strong> <span class="muted">(reference {reference})</span></p>
{body}</body></html>"""

FORM = """{error}<form method="post" action="/pay/{id}">
<label for="card_number">Card number</label>
<input id="card_number" name="card_number" inputmode="numeric" autocomplete="cc-number" value="{number}" required>
<label for="expiry">Expiry (MM/YY)</label>
<input id="expiry" name="expiry" autocomplete="cc-exp" placeholder="12/34" value="{expiry}" required>
<label for="name">Name on the card</label>
<input id="name" name="name" autocomplete="cc-name" value="{name}" required>
<button type="submit">Pay</button></form>
<form method="post" action="/pay/{id}/cancel"><button type="submit">Cancel and return</button></form>
<p class="muted">Test cards: 4242 4242 4242 4242 succeeds, 4000 0000 0000 0002 is declined,
4000 0000 0000 9995 has insufficient funds.</p>"""


def page(p: dict[str, Any], body: str, status: int = 200) -> Response:
    text = PAGE.format(
        amount=html.escape(p["amount"]), currency=html.escape(p["currency"]),
        reference=html.escape(p["reference"]), body=body,
    )  # fmt: skip
    return Response(content=text, status_code=status, media_type="text/html")


def back_url(p: dict[str, Any]) -> str:
    sep = "&" if "?" in p["return_url"] else "?"
    return f"{p['return_url']}{sep}{urlencode({'payment_id': p['id'], 'status': p['status']})}"


def back(p: dict[str, Any]) -> Redirect:
    return Redirect(path=back_url(p), status_code=303)
