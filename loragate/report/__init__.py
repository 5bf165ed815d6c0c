"""What people read: the base-vs-tuned rows every renderer shares, reports/<run>/ (report.json, report.md,
report.html, summary.md, SVG figures) written atomically, and the JUnit properties."""
