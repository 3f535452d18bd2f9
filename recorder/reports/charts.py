"""The HTML report's charts, drawn by matplotlib as inline SVG with real text (searchable,
and readable by a test in a browser).

Made for reading: dates on the time axis, values with thousands separators and never an
offset such as "1e7", the legend below the plot instead of over the data, at most a dozen
series (the smaller ones summed as "other").
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from recorder import amounts
from recorder.errors import ConfigError
from recorder.reports import formats

#: Series drawn one by one; the rest are added up as "other".
MAX_SERIES = 12
OTHER = "other"


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise ConfigError(f"HTML reports need matplotlib: {formats.REPORT_EXTRA_HINT}.") from None
    return matplotlib


def _render(draw: Callable[[Any, Any], None], height: float) -> str:
    matplotlib = _matplotlib()
    from matplotlib.figure import Figure

    style = {
        "svg.hashsalt": "recorder",  # stable ids: reproducible files
        "svg.fonttype": "none",  # text stays text
        "font.size": 9,
        "axes.titlesize": 11,
        "axes.titlelocation": "left",
    }
    with matplotlib.rc_context(style):
        figure = Figure(figsize=(10, height), dpi=96, layout="constrained")
        draw(figure, figure.add_subplot())
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg")
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]


def _money_axis(axes: Any, top: float) -> None:
    from matplotlib.ticker import FuncFormatter

    decimals = 0 if top >= 100 else 2
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.{decimals}f}"))
    axes.set_ylabel("USDT")
    axes.set_ylim(bottom=0)


def _time_axis(axes: Any, times: Sequence[datetime], zone: tzinfo) -> None:
    import matplotlib.dates as mdates

    span = times[-1] - times[0] if times else timedelta(0)
    axes.xaxis.set_major_locator(mdates.AutoDateLocator(tz=zone, minticks=3, maxticks=7))
    if span <= timedelta(minutes=30):
        pattern, label = "%H:%M:%S", f"{times[0].astimezone(zone):%Y-%m-%d} ({zone})"
    elif span <= timedelta(days=3):
        pattern, label = "%Y-%m-%d %H:%M", str(zone)
    else:
        pattern, label = "%Y-%m-%d", str(zone)
    axes.xaxis.set_major_formatter(mdates.DateFormatter(pattern, tz=zone))
    axes.set_xlabel(label)
    axes.set_xlim(times[0], times[-1])
    axes.grid(True, alpha=0.3)
    axes.spines[["top", "right"]].set_visible(False)


def largest(series: Mapping[str, Sequence[float]]) -> dict[str, list[float]]:
    """The MAX_SERIES - 1 largest series (by their peak) and the others summed as "other"."""
    if len(series) <= MAX_SERIES:
        return {name: list(values) for name, values in series.items()}
    ranked = sorted(series, key=lambda name: max(series[name], default=0.0), reverse=True)
    kept = {name: list(series[name]) for name in ranked[: MAX_SERIES - 1]}
    rest = [series[name] for name in ranked[MAX_SERIES - 1 :]]
    kept[OTHER] = [sum(values) for values in zip(*rest, strict=True)]
    return kept


def stacked(
    times: Sequence[datetime],
    series: Mapping[str, Sequence[float]],
    title: str,
    zone: tzinfo,
    *,
    palette: Sequence[str] = (),
) -> str:
    """Stacked areas of values over time (steps: a value holds until the next snapshot),
    one per series, the legend below the plot. A name keeps its colour from one chart to
    the next when each is given the same `palette` (the names in order)."""
    shown = largest(series)
    order = {name: index for index, name in enumerate([*palette, OTHER])}

    def draw(figure: Any, axes: Any) -> None:
        from matplotlib import colormaps

        colours = colormaps["tab20"]
        names = list(shown)
        layers = [shown[name] for name in names]
        if names:
            axes.stackplot(
                list(times),
                *layers,
                labels=names,
                colors=[colours(order.get(n, i) % 20) for i, n in enumerate(names)],
                step="post",
                alpha=0.9,
            )
            figure.legend(
                loc="outside lower center", ncols=min(len(names), 8), frameon=False, fontsize=8
            )
        top = max((sum(point) for point in zip(*layers, strict=True)), default=0.0)
        _time_axis(axes, times, zone)
        _money_axis(axes, top)
        axes.set_title(title)

    return _render(draw, 3.9 if len(shown) <= 8 else 4.2)


def _total(values: Sequence[Decimal]) -> Decimal:
    total = Decimal(0)
    for value in values:
        total = amounts.add(total, value)
    return total


def allocation(values: Mapping[str, Decimal], title: str) -> str:
    """Horizontal bars: the value held in each currency, largest first, with its share."""
    ranked = dict(sorted(values.items(), key=lambda item: item[1], reverse=True))
    if len(ranked) > MAX_SERIES:
        names = list(ranked)
        rest = _total([ranked[name] for name in names[MAX_SERIES - 1 :]])
        ranked = {name: ranked[name] for name in names[: MAX_SERIES - 1]} | {OTHER: rest}
    total = float(_total(list(ranked.values())))  # float-ok: for the shares shown

    def draw(figure: Any, axes: Any) -> None:
        from matplotlib.ticker import FuncFormatter

        names = list(reversed(ranked))  # the largest on top
        widths = [float(ranked[n]) for n in names]  # float-ok: bar lengths
        bars = axes.barh(names, widths, color="#2563eb")
        shares = [f" ({width / total:.1%})" if total > 0 else "" for width in widths]
        labels = [formats.money(ranked[n]) + share for n, share in zip(names, shares, strict=True)]
        axes.bar_label(bars, labels=labels, padding=4, fontsize=8)
        axes.margins(x=0.3)
        axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
        axes.set_xlabel("USDT")
        axes.grid(True, axis="x", alpha=0.3)
        axes.spines[["top", "right"]].set_visible(False)
        axes.set_title(title)

    return _render(draw, 1.0 + 0.32 * max(len(ranked), 1))
