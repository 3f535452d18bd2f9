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
        price = _storable(amounts.multiply(in_btc, btc))
        # A cross price that rounds to 0 at 30 places is not "worth nothing": it is unknown.
        return price if price is not None and not price.is_zero() else None
    return None


def _storable(value: Decimal) -> Decimal | None:
    """`value` exact when it can be stored, else rounded to the storable 30 places; None
    when even that has too many integer digits."""
    if not amounts.fits_storage(value):
        value = amounts.round_to_storage(value)
    return value if amounts.fits_storage(value) else None


def value_of(amount: Decimal, price: Decimal) -> Decimal | None:
    """amount x price, exact when it can be stored; rounded to the storable 30 places;
    None when it is too large to store."""
    return _storable(amounts.multiply(amount, price))


def valuate(balances: Mapping[str, Decimal], pairs: Mapping[str, Decimal] | None) -> Valuation:
    """Price every holding; `pairs` None (no ticker) leaves everything unpriced."""
    prices: dict[str, Decimal] = {}
    for currency in balances:
        price = None if pairs is None else usdt_price(currency, pairs)
        if price is not None:
            prices[currency] = price
    return revalue(balances, prices)


def revalue(balances: Mapping[str, Decimal], prices: Mapping[str, Decimal]) -> Valuation:
    """Values and total of `balances` at `prices` (USDT per unit; a currency without one is
    unpriced). Also how a buffered snapshot's values are worked out again when it is read
    back: what the history gets never rests on values a journal line merely states."""
    kept: dict[str, Decimal] = {}
    values: dict[str, Decimal] = {}
    unpriced = []
    for currency, amount in sorted(balances.items()):
        price = prices.get(currency)
        value = value_of(amount, price) if price is not None else None
        if price is not None and value is None:
            log.warning(
                "%s is worth more than the database can store (%s x %s); it is stored unpriced.",
                currency,
                amount,
                price,
            )
        if price is None or value is None:
            unpriced.append(currency)
            continue
        kept[currency], values[currency] = price, value
    total = _total(values)
    while total is None:  # the values fit, their sum does not: leave out the largest
        largest = max(values, key=lambda c: values[c])
        log.warning("The total value does not fit the database; %s is stored unpriced.", largest)
        del kept[largest], values[largest]
        unpriced.append(largest)
        total = _total(values)
    has_total = bool(values) or not balances
    return Valuation(kept, values, total if has_total else None, tuple(sorted(unpriced)))


def _total(values: Mapping[str, Decimal]) -> Decimal | None:
    total = Decimal(0)
    for value in values.values():
        total = amounts.add(total, value)
    return total if amounts.fits_storage(total) else None


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
