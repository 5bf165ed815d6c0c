"""A valid adapter manifest for the store's tests, which care about the files, not what training recorded."""

from __future__ import annotations

from loragate.store.adapters import BaseRecord, Manifest


def stub_manifest(tag: object = "", **fields: object) -> Manifest:
    """`tag` lands in data_hash, so a test can tell one save from another."""
    defaults = dict(task="iris", tier="tiny", base=BaseRecord(name="tiny:iris", fingerprint="0" * 64),
                    data_hash=str(tag), lora={}, train={}, seed=0, versions={}, loss_curve=[1.0], train_seconds=0.0,
                    metrics_at_train={})
    return Manifest(**{**defaults, **fields})
