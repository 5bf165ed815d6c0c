"""Gate checks (small objects whose `fails` returns a finding or None), training-curve checks, and the verdict of
a (task, tier) case."""
