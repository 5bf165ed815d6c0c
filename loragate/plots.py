"""The report's figures as PNG bytes: confusion matrices, per-class accuracy bars, the training loss curve.

Pure functions of plain data (lists, dicts), never of a TaskRun, so each is testable without a model. They
draw on a bare `Figure` (the Agg canvas, no pyplot): no global state, no display needed.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from loragate.metrics import INVALID

COLORS = {"base": "#9aa5b1", "tuned": "#2b6cb0", "baseline": "#dd8452"}  # the same model, the same colour
OTHER_COLORS = ["#55a868", "#8172b3", "#937860"]
PERPLEXITY_TICKS = [1.001, 1.002, 1.005, 1.01, 1.02, 1.05, 1.1, 1.2, 1.5, 2, 3, 5, 10, 20, 50, 100, 200, 500,
                    1_000, 10_000, 100_000]


@dataclass(frozen=True)
class Plot:
    file: str  # the PNG's name in the report directory
    caption: str
    png: bytes


def png_bytes(figure: Figure) -> bytes:
    """The figure as PNG; no metadata that varies between runs, so the same data gives the same bytes. zlib level 1,
    not 6: 15% less time per figure (the report's 14 figures took 6 s of a 55 s smoke gate) for slightly larger
    files."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None}, pil_kwargs={"compress_level": 1})
    return buffer.getvalue()


def confusion_png(labels: list[str], matrices: dict[str, list[list[int]]]) -> bytes:
    """One panel per matrix (e.g. base, tuned): rows gold labels, columns labels then <invalid>, every cell's
    count written in it, each panel shaded from 0 to its own largest cell. Side by side for a few labels;
    stacked for many, so a cell stays readable when the page scales the image to its width."""
    columns = [*labels, INVALID]
    stacked = len(columns) > 7
    cell = 0.75 if not stacked else 0.5  # inches per matrix cell
    side = max(3.2, cell * len(columns) + 1.8)  # one panel's width, tick labels included
    height = (side - 1.4) * len(labels) / len(columns) + 1.8  # the matrix is wider than tall by one column
    rows, cols = (len(matrices), 1) if stacked else (1, len(matrices))
    figure = Figure(figsize=(side * cols, height * rows), layout="constrained")
    font = 10 if not stacked else 8
    for position, (title, matrix) in enumerate(matrices.items(), start=1):
        counts = np.array(matrix, dtype=int)
        if counts.shape != (len(labels), len(columns)):
            raise ValueError(f"{title}: confusion matrix has shape {counts.shape}; expected {len(labels)} rows "
                             f"(gold labels) of {len(columns)} columns (labels, then {INVALID})")
        ax = figure.add_subplot(rows, cols, position)
        peak = max(int(counts.max()), 1)
        ax.imshow(counts, cmap="Blues", vmin=0, vmax=peak)
        for row in range(counts.shape[0]):
            for col in range(counts.shape[1]):
                value = counts[row, col]
                ax.text(col, row, str(value), ha="center", va="center", fontsize=font,
                        color="white" if value > peak / 2 else "black")
        correct, total = int(np.trace(counts[:, : len(labels)])), int(counts.sum())
        accuracy = f"{correct / total:.3f}" if total else "n/a"
        ax.set_title(f"{title}: accuracy {accuracy} ({correct}/{total})", fontsize=font + 1)
        ax.set_xticks(range(len(columns)), columns, rotation=35, ha="right", fontsize=font)
        ax.set_yticks(range(len(labels)), labels, fontsize=font)
        ax.set_xlabel("predicted", fontsize=font)
        ax.set_ylabel("gold", fontsize=font)
    return png_bytes(figure)


def per_class_png(labels: list[str], accuracy: dict[str, dict[str, float]], support: dict[str, int],
                  floor: float | None = None) -> bytes:
    """Grouped bars of each class's accuracy, one bar per model in `accuracy` (e.g. base, tuned), the value on
    each bar, and the card's per-class floor as a dashed line when given."""
    width = 0.8 / max(len(accuracy), 1)
    positions = np.arange(len(labels))
    rotate = len(labels) > 6
    bars_wide = 0.8 * len(labels) * max(len(accuracy), 1)  # inches for all bars
    figure = Figure(figsize=(min(12.0, max(5.0, bars_wide + 1.5)), 4.4 if rotate else 3.8), layout="constrained")
    ax = figure.add_subplot()
    handles = []  # in drawing order, so the legend reads base, tuned, floor
    for index, (name, values) in enumerate(accuracy.items()):
        heights = [values[label] for label in labels]
        offsets = positions + (index - (len(accuracy) - 1) / 2) * width
        color = COLORS.get(name, OTHER_COLORS[index % len(OTHER_COLORS)])
        bars = ax.bar(offsets, heights, width, label=name, color=color)
        ax.bar_label(bars, [f"{h:.2f}" for h in heights], fontsize=8, padding=2)
        handles.append(bars)
    if floor is not None:
        handles.append(ax.axhline(floor, color="#c53030", linestyle="--", linewidth=1, label=f"floor {floor:.2f}"))
    ax.set_xticks(positions, [f"{label}\n(n={support[label]})" for label in labels],
                  rotation=35 if rotate else 0, ha="right" if rotate else "center", fontsize=9)
    ax.set_ylim(0, 1.25)  # headroom above the value labels of a 1.0 bar for the legend
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("accuracy (recall of the gold class)")
    ax.set_title("per-class accuracy")
    ax.legend(handles=handles, loc="upper left", fontsize=8, ncols=len(handles), frameon=False)
    return png_bytes(figure)


def loss_to_perplexity(loss: np.ndarray) -> np.ndarray:
    """exp, clipped so the axis' far limits do not overflow."""
    return np.exp(np.clip(loss, -700, 700))


def perplexity_to_loss(perplexity: np.ndarray) -> np.ndarray:
    """log, clipped at the smallest positive float so a limit at 0 does not divide by zero."""
    return np.log(np.clip(perplexity, np.finfo(float).tiny, None))


def perplexity_ticks(low: float, high: float) -> list[float]:
    """Round perplexities inside the loss axis' limits, at least 1/12 of its (log) height apart so their
    labels never overlap: exp packs large perplexities into the top of a log-loss axis."""
    low = max(low, 1e-12)  # a linear axis may start at or below 0
    span = math.log10(high) - math.log10(low)
    chosen: list[float] = []
    for tick in PERPLEXITY_TICKS:
        loss = math.log(tick)
        if not low <= loss <= high:
            continue
        if chosen and math.log10(loss) - math.log10(math.log(chosen[-1])) < span / 12:
            continue
        chosen.append(tick)
    return chosen


def loss_png(loss_curve: list[float], eval_loss: float | None = None,
             eval_curve: list[list[float]] | None = None) -> bytes:
    """Training loss per optimizer step on a log scale, perplexity (exp of the loss) on the right axis, the
    eval split's loss every few steps while training (`eval_curve`: [step, loss] pairs) or after it."""
    if not loss_curve:
        raise ValueError("no loss curve to plot: the manifest's loss_curve is empty")
    steps = np.arange(1, len(loss_curve) + 1)
    figure = Figure(figsize=(7.0, 3.8), layout="constrained")
    ax = figure.add_subplot()
    ax.plot(steps, loss_curve, color=COLORS["tuned"], linewidth=1, label="train loss (per step)")
    if eval_curve:
        ax.plot([step for step, _ in eval_curve], [loss for _, loss in eval_curve], "o-", color="#c53030",
                markersize=4, linewidth=1, label=f"eval loss (last {eval_curve[-1][1]:.4f}, perplexity "
                                                  f"{math.exp(eval_curve[-1][1]):.3f})")
    elif eval_loss is not None and math.isfinite(eval_loss):
        ax.plot([steps[-1]], [eval_loss], "o", color="#c53030",
                label=f"eval loss {eval_loss:.4f} (perplexity {math.exp(eval_loss):.3f})")
    plain = FuncFormatter(lambda value, _: f"{value:g}")  # 0.01, not 10^-2
    if max(loss_curve) >= 10 * min(loss_curve) > 0:  # a log scale only pays off over a decade or more
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (nats per answer token)")
    perplexity = ax.secondary_yaxis("right", functions=(loss_to_perplexity, perplexity_to_loss))
    ticks = perplexity_ticks(*ax.get_ylim())
    if len(ticks) >= 2:
        perplexity.set_yticks(ticks)
    perplexity.yaxis.set_major_formatter(plain)
    perplexity.yaxis.set_minor_formatter(NullFormatter())
    perplexity.set_ylabel("perplexity = exp(loss)")
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title(f"training loss, {len(loss_curve)} steps")
    ax.legend(fontsize=8, frameon=False)
    return png_bytes(figure)
