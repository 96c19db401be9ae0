"""The plugin process: start-up checks and the tuning of the SDK's stdio runtime."""
