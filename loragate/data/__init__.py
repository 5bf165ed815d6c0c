"""The task's examples: data files read as the card says, split and hashed, fitted to max_length, and the parsing
of a model's raw output into the task's schema. No torch at load time."""
