"""One task at one tier end to end (loragate.run.task_run), with free and constrained decoding side by side and
the last release as a baseline. Heavy (torch): this `__init__` imports nothing."""
