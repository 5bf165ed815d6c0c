"""The project's own evaluate metric modules, loaded by evaluate.load(<directory>) (see loragate.metrics.text)."""
