"""The pytest plugin (entry point `loragate = loragate.plugin.hooks`): options, discovery of the project's tasks,
start-up checks, the gate session, xdist scheduling. Nothing heavy is imported at load time, so `pytest --help`
stays fast."""
