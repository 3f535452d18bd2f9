"""Alerts on change: a webhook POST and/or a command for each recorded change that a
[[notify]] rule selects.

Delivery happens on a worker thread of its own, so a slow or dead receiver never delays
or fails a poll. Each delivery is tried a few times with growing pauses, then given up
with a log line. Webhook URLs often carry a token or a password: logs name only the host.
A command gets only what it needs (`command_environment`): never the daemon's keys.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import threading
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx

from recorder import __version__, amounts, text
from recorder.config import NotifyRule as Rule
from recorder.values import Change, PollOutcome

log = logging.getLogger(__name__)

ATTEMPTS = 4
FIRST_PAUSE = 1.0

#: What a command inherits from the daemon's environment: enough to find programs, a home,
#: the operator's language and zone. Nothing else: the environment holds the keys.
INHERITED = ("PATH", "HOME", "LANG", "TZ")
INHERITED_PREFIX = "LC_"
#: Never passed on, whatever the name's prefix (an `LC_API_KEY` would be odd, not safe).
_SECRET_WORDS = ("KEY", "SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH")


def selects(rule: Rule, account: str, change: Change) -> bool:
    """True when `rule` wants to hear about `change`."""
    if rule.accounts and account not in rule.accounts:
        return False
    if rule.currencies and change.currency.upper() not in rule.currencies:
        return False
    size = abs(change.delta)
    if rule.min_abs_change is not None and size < rule.min_abs_change:
        return False
    # Appeared / gone are 100 % changes; only a change of a held amount is measured.
    relative = amounts.ratio(size, change.old_amount) if change.old_amount else None
    return not (
        rule.min_rel_change is not None and relative is not None and relative < rule.min_rel_change
    )


def describe(rule: Rule) -> str:
    """Where a rule delivers, for log lines (host and port only: the user, password, path
    and query of a URL may hold tokens)."""
    if rule.url:
        return f"webhook {urlsplit(rule.url).netloc.rpartition('@')[2]}"
    return f"command {rule.command[0]}"


def command_environment(
    document: Mapping[str, Any], parent: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The whole environment of a notify command: `RECORDER_<FIELD>` for each field of
    the change, and from the daemon's own (`parent`) only PATH, HOME, LANG, LC_* and TZ."""
    parent = os.environ if parent is None else parent
    inherited = {
        name: value
        for name, value in parent.items()
        if (name in INHERITED or name.startswith(INHERITED_PREFIX))
        and not any(word in name.upper() for word in _SECRET_WORDS)
    }
    fields = {
        f"RECORDER_{key.upper()}": "" if value is None else text.safe(value, text.ERROR_LIMIT)
        for key, value in document.items()
    }
    return {**inherited, **fields}


def payload(account: str, change: Change, result: PollOutcome) -> dict[str, Any]:
    """The JSON document sent for one change; amounts as exact strings."""

    def exact(value: Decimal | None) -> str | None:
        return None if value is None else amounts.to_text(value)

    taken_at = result.snapshot.taken_at if result.snapshot else result.attempted_at
    return {
        "account": account,
        "currency": change.currency,
        "change": change.kind,
        "old_amount": exact(change.old_amount),
        "new_amount": exact(change.new_amount),
        "delta": exact(change.delta),
        "taken_at": taken_at.isoformat(),
        "snapshot_id": result.snapshot_id,
        # Built from checked names and exact amounts; masked all the same, like all text
        # that leaves the recorder.
        "text": text.redact(change.describe(account)),
    }


class Notifier:
    """Queues matching changes and delivers them from one worker thread."""

    def __init__(
        self, rules: Sequence[Rule], *, timeout: float = 10.0, first_pause: float = FIRST_PAUSE
    ) -> None:
        self.rules = tuple(rules)
        self.first_pause = first_pause
        self._queue: queue.Queue[tuple[Rule, dict[str, Any]] | None] = queue.Queue()
        self._stop = threading.Event()
        self._http = httpx.Client(
            timeout=timeout, headers={"User-Agent": f"coinw-recorder/{__version__}"}
        )
        self._worker = threading.Thread(target=self._deliver_all, name="notify", daemon=True)
        self._worker.start()

    def observe(self, result: PollOutcome) -> None:
        """Queue a delivery for every change a rule selects (a recorder listener)."""
        for change in result.changes:
            for rule in self.rules:
                if selects(rule, result.account, change):
                    self._queue.put((rule, payload(result.account, change, result)))

    def _deliver_all(self) -> None:
        while (item := self._queue.get()) is not None:
            rule, document = item
            for attempt in range(1, ATTEMPTS + 1):
                try:
                    self._deliver(rule, document)
                    break
                except (
                    httpx.HTTPError,
                    OSError,
                    subprocess.SubprocessError,
                    RuntimeError,
                ) as error:
                    if attempt == ATTEMPTS or self._stop.is_set():
                        log.warning(
                            "%s: could not deliver the %s %s change to %s after %d attempts "
                            "(%s); it is dropped.",
                            document["account"],
                            document["currency"],
                            document["change"],
                            describe(rule),
                            attempt,
                            error,
                        )
                        break
                    self._stop.wait(self.first_pause * 2 ** (attempt - 1))

    def _deliver(self, rule: Rule, document: dict[str, Any]) -> None:
        body = json.dumps(document)
        if rule.url:
            response = self._http.post(
                rule.url, content=body, headers={"Content-Type": "application/json"}
            )
            if response.status_code >= 300:
                raise RuntimeError(f"HTTP {response.status_code}")
        if rule.command:
            environment = command_environment(document)
            completed = subprocess.run(  # noqa: S603 - the operator's own command, no shell
                list(rule.command),
                input=body,
                text=True,
                env=environment,
                capture_output=True,
                timeout=60,
                check=False,
            )
            if completed.returncode != 0:
                raise RuntimeError(f"exit code {completed.returncode}")

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (within `timeout`), then stop."""
        self._queue.put(None)
        self._worker.join(timeout)
        self._stop.set()
        self._http.close()
