"""What holdings were worth when they were recorded, in USDT, from CoinW's public ticker.

A currency is priced by its `<CUR>_USDT` pair, else through BTC (`<CUR>_BTC` x `BTC_USDT`);
USDT is 1. Anything else is unpriced: its value stays NULL and reports say so, never
counting it as zero. Prices are those at capture time; history is never revalued.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from recorder import amounts
from recorder.errors import PollError
from recorder.sources.coinw.parse import parse_amount
from recorder.sources.pacing import RateLimiter
from recorder.values import Valuation

log = logging.getLogger(__name__)

QUOTE = "USDT"
#: CoinW allows 80 public requests per second per IP; one ticker per round is far below.
TICKER_LIMIT = (10, 1.0)


def last_prices(ticker: Mapping[str, Any]) -> dict[str, Decimal]:
    """Pair -> last traded price, keeping only well-formed, positive prices."""
    prices: dict[str, Decimal] = {}
    for pair, fields in ticker.items():
        if not isinstance(pair, str) or not isinstance(fields, Mapping):
            continue
        try:
            last = parse_amount(pair, fields.get("last"))
        except PollError:
            continue  # one malformed pair must not cost the others their price
        if not last.is_zero():
            prices[pair.upper()] = last
    return prices


def usdt_price(currency: str, pairs: Mapping[str, Decimal]) -> Decimal | None:
    """The USDT price of `currency`: direct pair, else through BTC, else None."""
    currency = currency.upper()
    if currency == QUOTE:
        return Decimal(1)
    direct = pairs.get(f"{currency}_{QUOTE}")
    if direct is not None:
        return direct
    in_btc, btc = pairs.get(f"{currency}_BTC"), pairs.get(f"BTC_{QUOTE}")
    if in_btc is not None and btc is not None:
        price = amounts.multiply(in_btc, btc)
        return price if amounts.fits_storage(price) else amounts.round_to_storage(price)
    return None


def value_of(amount: Decimal, price: Decimal) -> Decimal | None:
    """amount x price, exact when it can be stored; rounded to the storable 30 places."""
    product = amounts.multiply(amount, price)
    if not amounts.fits_storage(product):
        product = amounts.round_to_storage(product)
    return product if amounts.fits_storage(product) else None


def valuate(balances: Mapping[str, Decimal], pairs: Mapping[str, Decimal] | None) -> Valuation:
    """Price every holding; `pairs` None (no ticker) leaves everything unpriced."""
    if pairs is None:
        return Valuation(unpriced=tuple(sorted(balances)), total=None if balances else Decimal(0))
    prices: dict[str, Decimal] = {}
    values: dict[str, Decimal] = {}
    unpriced = []
    for currency, amount in sorted(balances.items()):
        price = usdt_price(currency, pairs)
        value = value_of(amount, price) if price is not None else None
        if price is None or value is None:
            unpriced.append(currency)
            continue
        prices[currency], values[currency] = price, value
    total = Decimal(0)
    for value in values.values():
        total = amounts.add(total, value)
    has_total = bool(values) or not balances
    return Valuation(prices, values, total if has_total else None, tuple(unpriced))


class TickerCache:
    """One ticker per polling round, shared by every account polled in it.

    A round is `max_age` seconds: whoever asks first fetches; the others reuse the answer
    (or the failure: a broken ticker is not asked again and again within the round).
    """

    def __init__(
        self,
        fetch: Callable[[], Mapping[str, Any]],
        max_age: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self.max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._limiter = RateLimiter(*TICKER_LIMIT)
        self._fetched_at: float | None = None
        self._pairs: dict[str, Decimal] | None = None

    def pairs(self) -> dict[str, Decimal] | None:
        """Current pair prices, or None when this round's ticker request failed."""
        with self._lock:
            now = self._clock()
            if self._fetched_at is not None and now - self._fetched_at < self.max_age:
                return self._pairs
            self._limiter.acquire()
            try:
                self._pairs = last_prices(self._fetch())
            except PollError as error:
                log.warning(
                    "The ticker could not be fetched (%s): %s Balances are stored without "
                    "values until it is back.",
                    error.kind,
                    error,
                )
                self._pairs = None
            self._fetched_at = self._clock()
            return self._pairs
