"""Metrics of a split and the registry that gates and every report read (one entry per metric: display name,
direction, the statistic its paired bootstrap resamples), the paired statistics, and the text metrics."""
