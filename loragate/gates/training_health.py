"""Training health: what an adapter's loss curves say about its training, as findings.

A gate on test metrics can pass an adapter whose training went wrong in ways the next run or the next data will
show: an eval loss that ended well above its best (divergence: the recipe overshoots, and the adapter kept is the
last step's, not the best), a final training loss far below the eval loss (over-fitting: the train rows were
memorised), a training loss that barely moved (flat: the learning rate or the target modules do nothing). The
curves are read from the adapter's loragate manifest, which every adapter loragate trained records; an adapter
trained elsewhere has none, and its health is "not known", never ok.

Reported as notes by default (`gates.training_health: report`); `gate` makes each finding a gate that fails.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from loragate.card.settings import GateSettings
from loragate.gates.result import GateResult
from loragate.store.adapters import Manifest

CHECK = "training health"
SMOOTHING = 10  # the training loss is averaged over windows of 1/SMOOTHING of its steps: one noisy step is no trend
LOSS_FLOOR = 0.1  # a rise is a share of the best loss, or of this many nats where the best is lower: near zero, a
# step's noise is a large share of the loss (Iris ends near 0.05)


@dataclass(frozen=True)
class Curves:
    """An adapter's losses while it trained, in nats per answer token (per example for a classifier's head)."""

    train: list[float]  # the training loss of each optimizer step
    eval: list[tuple[int, float]]  # (step, eval loss) while training; empty where the kind logs none (only instruct)
    final_eval: float | None  # the eval loss after training; None where none was recorded

    @classmethod
    def of(cls, manifest: Manifest | None) -> Curves | None:
        """The curves a loragate manifest records; None without a manifest or a loss curve (trained elsewhere)."""
        if manifest is None or not manifest.loss_curve:
            return None
        points = [(step, loss) for step, loss in manifest.eval_curve or []]
        final = points[-1][1] if points else manifest.metrics_at_train.get("eval_loss")
        return cls(list(manifest.loss_curve), points, final if final is not None and math.isfinite(final) else None)


def percent(share: float) -> str:
    """A card's share as a percentage, as written: 0.999 -> 99.9%, 0.25 -> 25%."""
    return f"{share * 100:g}%"


def smoothed(losses: list[float]) -> list[float]:
    """The means of consecutive windows of len/SMOOTHING steps, the last window ending at the last step."""
    width = max(1, len(losses) // SMOOTHING)
    ends = range(len(losses), 0, -width)
    return [sum(losses[max(0, end - width):end]) / len(losses[max(0, end - width):end]) for end in ends][::-1]


def divergence(settings: GateSettings, curves: Curves) -> GateResult:
    """The eval loss's end against its best (the smoothed training loss's where no eval curve was logged)."""
    name = f"{CHECK}: divergence"
    if len(curves.eval) >= 2:
        what, losses, steps = "eval loss", [loss for _, loss in curves.eval], [step for step, _ in curves.eval]
    elif len(curves.train) >= 2:
        what, losses = "training loss (smoothed)", smoothed(curves.train)
        steps = [round(len(curves.train) * (i + 1) / len(losses)) for i in range(len(losses))]
    else:
        return GateResult(name, None, f"not known: {len(curves.train)} training step, no eval curve", skipped=True)
    best = min(range(len(losses)), key=losses.__getitem__)
    rise = (losses[-1] - losses[best]) / max(losses[best], LOSS_FLOOR)
    numbers = f"{what} ended at {losses[-1]:.3f}, {rise:.1%} above its best {losses[best]:.3f} (step {steps[best]})"
    if rise > settings.max_eval_loss_rise:
        return GateResult(name, f"{numbers} > {percent(settings.max_eval_loss_rise)} (gates.max_eval_loss_rise): "
                                f"training overshot; lower train.lr or train.epochs")
    return GateResult(name, None, f"{numbers}, within {percent(settings.max_eval_loss_rise)}")


def over_fitting(settings: GateSettings, curves: Curves) -> GateResult:
    """The final eval loss against the final (smoothed) training loss, in nats."""
    name = f"{CHECK}: over-fitting"
    if curves.final_eval is None or not curves.train:
        return GateResult(name, None, "not known: no eval loss or no training loss was recorded", skipped=True)
    train = smoothed(curves.train)[-1]
    gap = curves.final_eval - train
    numbers = f"eval loss {curves.final_eval:.3f}, final training loss {train:.3f}: a gap of {gap:+.3f} nats"
    if gap > settings.max_train_eval_gap:
        return GateResult(name, f"{numbers} > {settings.max_train_eval_gap:g} (gates.max_train_eval_gap): "
                                f"the adapter memorised its train rows; fewer train.epochs, more data, or "
                                f"lora.dropout")
    return GateResult(name, None, f"{numbers}, within {settings.max_train_eval_gap:g}")


def flat_loss(settings: GateSettings, curves: Curves) -> GateResult:
    """How far the smoothed training loss fell from its first window to its last."""
    name = f"{CHECK}: flat loss"
    if len(curves.train) < 2:
        return GateResult(name, None, f"not known: {len(curves.train)} training step", skipped=True)
    windows = smoothed(curves.train)
    fall = (windows[0] - windows[-1]) / max(windows[0], LOSS_FLOOR)
    numbers = (f"training loss fell {fall:.1%} ({windows[0]:.3f} -> {windows[-1]:.3f} smoothed, "
               f"{len(curves.train)} steps)")
    if fall < settings.min_train_loss_fall:
        return GateResult(name, f"{numbers} < {percent(settings.min_train_loss_fall)} (gates.min_train_loss_fall): "
                                f"training barely moved it; raise train.lr or train.epochs, or check "
                                f"lora.target_modules")
    return GateResult(name, None, numbers)


def training_health(settings: GateSettings, curves: Curves | None) -> list[GateResult]:
    """Divergence, over-fitting and a flat loss: each a finding where unhealthy, its numbers where healthy, and
    skipped with "not known" where the curves cannot tell (`curves` None: the adapter has no loragate manifest)."""
    if curves is None:
        return [GateResult(f"{CHECK}: {what}", None, "not known: the adapter has no loragate manifest with its loss "
                           "curves (trained elsewhere)", skipped=True)
                for what in ("divergence", "over-fitting", "flat loss")]
    return [divergence(settings, curves), over_fitting(settings, curves), flat_loss(settings, curves)]


def health_gates(settings: GateSettings, curves: Curves | None) -> list[GateResult]:
    """The run's training-health gates: all three where the card gates them (`training_health: gate`), else none."""
    return training_health(settings, curves) if settings.training_health == "gate" else []


def health_notes(settings: GateSettings, curves: Curves | None) -> list[str]:
    """Where the card only reports training health (the default): a note per finding and per check that could not
    tell; none where everything is healthy, or where the card gates it (the gates show it then)."""
    if settings.training_health == "gate":
        return []
    if curves is None:
        return [f"{CHECK} not known: the adapter has no loragate manifest with its loss curves (trained elsewhere)"]
    notes = []
    for result in training_health(settings, curves):
        if result.finding is not None:
            notes.append(f"{result.check}: {result.finding} (reported, not gated: gates.training_health: report)")
        elif result.skipped:
            notes.append(f"{result.check} {result.evidence}")
    return notes
