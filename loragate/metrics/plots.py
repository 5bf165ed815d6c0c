"""The report's figures as SVG: confusion matrices, per-class accuracy bars, the training loss curve.

Written as SVG text, not drawn by a plotting library: rectangles, lines and text need no layout engine, and
matplotlib's took 5 s of a 60 s smoke gate (0.3-0.5 s a figure) plus 1 s to import. Pure functions of plain data
(lists, dicts), never of a TaskRun, so each is testable without a model. Every text is XML-escaped (labels come
from users' cards and data) and the same data gives the same bytes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from xml.sax.saxutils import escape

from loragate.metrics.scores import INVALID

COLORS = {"base": "#9aa5b1", "tuned": "#2b6cb0", "baseline": "#dd8452"}  # the same model, the same colour
OTHER_COLORS = ["#55a868", "#8172b3", "#937860"]
RED = "#c53030"
GRID = "#e2e8f0"
PERPLEXITY_TICKS = [1.001, 1.002, 1.005, 1.01, 1.02, 1.05, 1.1, 1.2, 1.5, 2, 3, 5, 10, 20, 50, 100, 200, 500,
                    1_000, 10_000, 100_000]
CHAR_WIDTH = 0.6  # an average character's width in ems, to leave room for labels
SIN_35, COS_35 = math.sin(math.radians(35)), math.cos(math.radians(35))  # slanted tick labels
FORBIDDEN_IN_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


@dataclass(frozen=True)
class Plot:
    file: str  # the SVG's name in the report directory
    caption: str
    svg: str


def text_width(text: str, size: float) -> float:
    return len(text) * size * CHAR_WIDTH


def document(width: float, height: float, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="DejaVu Sans, Arial, sans-serif">\n'
            f'<rect width="100%" height="100%" fill="white"/>\n' + "\n".join(body) + "\n</svg>\n")


def label(x: float, y: float, content: str, size: float = 11, anchor: str = "middle", fill: str = "black",
          rotate: float | None = None) -> str:
    """A text whose baseline starts, ends or is centred (`anchor`) at (x, y), turned `rotate` degrees about it.
    Escaped, and the control characters XML forbids shown as U+FFFD, so no label breaks the figure."""
    turn = f' transform="rotate({rotate:g} {x:.1f} {y:.1f})"' if rotate else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size:g}" text-anchor="{anchor}" fill="{fill}"{turn}>'
            f'{FORBIDDEN_IN_XML.sub(chr(0xFFFD), escape(content))}</text>')


def line(x1: float, y1: float, x2: float, y2: float, stroke: str = "black", dashed: bool = False) -> str:
    dash = ' stroke-dasharray="5 3"' if dashed else ""
    return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{stroke}"{dash}/>'


def rect(x: float, y: float, width: float, height: float, fill: str, stroke: str | None = None) -> str:
    outline = f' stroke="{stroke}"' if stroke else ""
    return f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}" fill="{fill}"{outline}/>'


def polyline(points: list[tuple[float, float]], stroke: str) -> str:
    """The points joined by a line; one point, which a polyline would not draw, as a dot."""
    if len(points) == 1:
        return dot(*points[0], 1.5, stroke)
    return f'<polyline points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in points)}" fill="none" stroke="{stroke}"/>'


def dot(x: float, y: float, radius: float, fill: str) -> str:
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius:g}" fill="{fill}"/>'


def y_grid(ticks: list[float], y_of: Callable[[float], float], left: float, right: float, size: float,
           text: Callable[[float], str]) -> list[str]:
    """A light line across the axes at each tick, and its value left of the axis."""
    return [part for tick in ticks for part in (line(left, y_of(tick), right, y_of(tick), GRID),
                                                label(left - 6, y_of(tick) + 4, text(tick), size, anchor="end"))]


def shade(fraction: float) -> str:
    """White (0) to dark blue (1), as matplotlib's Blues."""
    light, dark = (247, 251, 255), (8, 48, 107)
    return "#" + "".join(f"{round(a + (b - a) * fraction):02x}" for a, b in zip(light, dark))


def confusion_svg(labels: list[str], matrices: dict[str, list[list[int]]]) -> str:
    """One panel per matrix (e.g. base, tuned): rows gold labels, columns labels then <invalid>, every cell's
    count written in it, each panel shaded from 0 to its own largest cell. Side by side for a few labels;
    stacked for many, so a cell stays readable when the page scales the image to its width."""
    columns = [*labels, INVALID]
    stacked = len(columns) > 7
    cell, size = (46.0, 12.0) if not stacked else (32.0, 10.0)
    left = max(text_width(name, size) for name in labels) + 34  # row labels and the turned "gold"
    top = 30.0  # the title
    bottom = max(text_width(name, size) for name in columns) * SIN_35 + size + 34  # slanted labels, "predicted"
    grid_width, grid_height = cell * len(columns), cell * len(labels)
    most = max((sum(map(sum, matrix)) for matrix in matrices.values()), default=0)
    title = max((text_width(f"{name}: accuracy 0.000 ({most}/{most})", size + 1) for name in matrices), default=0)
    panel_width = max(left + grid_width + 16, title + 16)
    panel_height = top + grid_height + bottom
    body = []
    for index, (title, matrix) in enumerate(matrices.items()):
        if len(matrix) != len(labels) or any(len(row) != len(columns) for row in matrix):
            shape = f"{len(matrix)}x{','.join(str(len(row)) for row in matrix)}"
            raise ValueError(f"{title}: confusion matrix has shape {shape}; expected {len(labels)} rows "
                             f"(gold labels) of {len(columns)} columns (labels, then {INVALID})")
        x0, y0 = (0.0, index * panel_height) if stacked else (index * panel_width, 0.0)
        peak = max(max(max(row) for row in matrix), 1)
        correct, total = sum(matrix[i][i] for i in range(len(labels))), sum(map(sum, matrix))
        accuracy = f"{correct / total:.3f}" if total else "n/a"
        body.append(label(x0 + panel_width / 2, y0 + 20, f"{title}: accuracy {accuracy} ({correct}/{total})", size + 1))
        for row, counts in enumerate(matrix):
            y = y0 + top + row * cell
            body.append(label(x0 + left - 6, y + cell / 2 + size * 0.35, labels[row], size, anchor="end"))
            for column, value in enumerate(counts):
                x = x0 + left + column * cell
                body.append(rect(x, y, cell, cell, shade(value / peak)))
                body.append(label(x + cell / 2, y + cell / 2 + size * 0.35, str(value), size,
                                  fill="white" if value > peak / 2 else "black"))
        for column, name in enumerate(columns):
            x = x0 + left + column * cell + cell / 2 + size * 0.3
            body.append(label(x, y0 + top + grid_height + size + 2, name, size, anchor="end", rotate=-35))
        body.append(label(x0 + left + grid_width / 2, y0 + panel_height - 8, "predicted", size))
        body.append(label(x0 + 12, y0 + top + grid_height / 2, "gold", size, rotate=-90))
    count = len(matrices)
    return document(panel_width * (1 if stacked else count), panel_height * (count if stacked else 1), body)


def per_class_svg(labels: list[str], accuracy: dict[str, dict[str, float]], support: dict[str, int],
                  floor: float | None = None) -> str:
    """Grouped bars of each class's accuracy, one bar per model in `accuracy` (e.g. base, tuned), the value on
    each bar, and the card's per-class floor as a dashed line when given."""
    bar, gap, size = 26.0, 20.0, 10.0
    group = bar * max(len(accuracy), 1) + gap
    names = [f"{name} (n={support[name]})" for name in labels]
    rotate = len(labels) > 6 or any(text_width(name, size) > group for name in names)
    top, height = 52.0, 220.0  # the title and the legend above the axes
    first = text_width(names[0], size) * COS_35 - group / 2 + 24 if rotate and names else 0.0
    left = max(58.0, first)  # a slanted first name reaches left of its bars
    bottom = (max(text_width(name, size) for name in names) * SIN_35 if rotate else size) + 20
    width = max(left + group * len(labels) + 20, 420.0)
    y_of = lambda value: top + height * (1 - value)  # noqa: E731
    body = [label(width / 2, 18, "per-class accuracy", 13)]
    body += y_grid([0.0, 0.2, 0.4, 0.6, 0.8, 1.0], y_of, left, width - 10, size, lambda tick: f"{tick:.1f}")
    body.append(label(14, top + height / 2, "accuracy (recall of the gold class)", size, rotate=-90))
    legend_x = left
    for index, (model, values) in enumerate(accuracy.items()):
        color = COLORS.get(model, OTHER_COLORS[index % len(OTHER_COLORS)])
        body += [rect(legend_x, 30, 10, 10, color), label(legend_x + 14, 39, model, size, anchor="start")]
        legend_x += text_width(model, size) + 34
        for position, name in enumerate(labels):
            value = values[name]
            x = left + position * group + gap / 2 + index * bar
            body.append(rect(x, y_of(value), bar - 2, height * value, color))
            body.append(label(x + (bar - 2) / 2, y_of(value) - 3, f"{value:.2f}", 8))
    if floor is not None:
        body.append(line(left, y_of(floor), width - 10, y_of(floor), RED, dashed=True))
        body += [line(legend_x, 35, legend_x + 18, 35, RED, dashed=True),
                 label(legend_x + 22, 39, f"floor {floor:.2f}", size, anchor="start")]
    body.append(line(left, top + height, width - 10, top + height))
    for position, name in enumerate(names):
        x = left + position * group + group / 2
        if rotate:
            body.append(label(x + size * 0.3, top + height + size + 4, name, size, anchor="end", rotate=-35))
        else:
            body.append(label(x, top + height + size + 6, name, size))
    return document(width, top + height + bottom, body)


def linear_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round values (1, 2 or 5 times a power of ten apart) from low to high, about `count` of them."""
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(multiple * power for multiple in (1, 2, 5, 10) if multiple * power >= raw)
    first = math.ceil(low / step - 1e-9) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def log_ticks(low: float, high: float) -> list[float]:
    """1, 2 and 5 times each power of ten from low to high; the powers of ten alone where that makes too many."""
    ticks = [multiple * 10.0 ** power for power in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
             for multiple in (1, 2, 5) if low <= multiple * 10.0 ** power <= high]
    return ticks if len(ticks) <= 8 else [tick for tick in ticks if f"{tick:g}".lstrip("0.").startswith("1")]


def perplexity_ticks(low: float, high: float, spread: Callable[[float], float] = math.log10) -> list[float]:
    """Round perplexities inside the loss axis' limits, at least 1/12 of its height apart (measured by `spread`,
    the axis' scale) so their labels never overlap: exp packs large perplexities into the top of a loss axis."""
    low = max(low, 1e-12)  # a linear axis may start at or below 0
    span = spread(high) - spread(low)
    chosen: list[float] = []
    for tick in PERPLEXITY_TICKS:
        loss = math.log(tick)
        if not low <= loss <= high:
            continue
        if chosen and spread(loss) - spread(math.log(chosen[-1])) < span / 12:
            continue
        chosen.append(tick)
    return chosen


TOKEN_LOSS = "nats per answer token"  # a causal model's completion-only loss: its exp is a perplexity


def loss_svg(loss_curve: list[float], eval_loss: float | None = None,
             eval_curve: list[list[float]] | None = None, unit: str = TOKEN_LOSS) -> str:
    """Training loss per optimizer step (a log scale where it spans a decade or more) in `unit`, perplexity (exp of
    the loss) on the right axis where the loss is per answer token (a classifier head's loss per example has no
    perplexity), the eval split's loss every few steps while training (`eval_curve`: [step, loss] pairs) or after it.
    Steps whose loss is not finite are left out of the line."""
    per_token = unit == TOKEN_LOSS
    if not loss_curve:
        raise ValueError("no loss curve to plot: the manifest's loss_curve is empty")
    steps = len(loss_curve)
    evals = ([(step, loss) for step, loss in eval_curve] if eval_curve else
             [(steps, eval_loss)] if eval_loss is not None and math.isfinite(eval_loss) else [])
    values = [value for value in [*loss_curve, *(loss for _, loss in evals)] if math.isfinite(value)] or [1.0]
    log = min(values) > 0 and max(values) >= 10 * min(values)  # a log scale only pays off over a decade or more
    scale = math.log10 if log else (lambda value: value)
    low, high = scale(min(values)), scale(max(values))
    pad = max((high - low) * 0.06, abs(high) * 1e-3) or 0.5  # a flat curve stays flat, not a full-height swing
    low, high = low - pad, high + pad
    left, right, top, height, width = 62.0, 70.0, 48.0, 230.0, 700.0
    plot_width = width - left - right
    x_of = lambda step: left + plot_width * ((step - 1) / max(steps - 1, 1))  # noqa: E731
    y_of = lambda loss: top + height * (1 - (scale(loss) - low) / (high - low))  # noqa: E731
    lowest, highest = (10 ** low, 10 ** high) if log else (low, high)
    body = [label(width / 2, 18, f"training loss, {steps} steps", 13)]
    body += y_grid(log_ticks(lowest, highest) if log else linear_ticks(lowest, highest), y_of, left, left + plot_width,
                   10, lambda tick: f"{tick:g}")
    for tick in perplexity_ticks(lowest, highest, scale) if per_token else []:
        body.append(line(left + plot_width, y_of(math.log(tick)), left + plot_width + 4, y_of(math.log(tick))))
        body.append(label(left + plot_width + 7, y_of(math.log(tick)) + 4, f"{tick:g}", 10, anchor="start"))
    for tick in linear_ticks(1, max(steps, 2)):
        if tick == int(tick) and 1 <= tick <= steps:
            body.append(label(x_of(tick), top + height + 16, f"{tick:g}", 10))
    body += [rect(left, top, plot_width, height, "none", stroke="black"),
             label(left + plot_width / 2, top + height + 36, "optimizer step", 11),
             label(14, top + height / 2, f"loss ({unit})", 11, rotate=-90)]
    if per_token:
        body.append(label(width - 12, top + height / 2, "perplexity = exp(loss)", 11, rotate=90))
    segment: list[tuple[float, float]] = []  # a run of finite losses, drawn as one line
    for step, loss in enumerate([*loss_curve, math.nan], start=1):
        if math.isfinite(loss):
            segment.append((x_of(step), y_of(loss)))
        elif segment:
            body.append(polyline(segment, COLORS["tuned"]))
            segment = []
    legend = [(COLORS["tuned"], "train loss (per step)")]
    if evals:
        points = [(x_of(step), y_of(loss)) for step, loss in evals if math.isfinite(loss)]
        if len(points) > 1:
            body.append(polyline(points, RED))
        body += [dot(x, y, 3.5, RED) for x, y in points]
        last = evals[-1][1]
        perplexity = f" (perplexity {math.exp(min(last, 700)):.3f})" if per_token else ""
        legend.append((RED, f"eval loss {'(last) ' if eval_curve else ''}{last:.4f}{perplexity}"))
    x = left
    for color, name in legend:
        body += [line(x, 34, x + 18, 34, color), label(x + 22, 38, name, 10, anchor="start")]
        x += text_width(name, 10) + 40
    return document(width, top + height + 46, body)
