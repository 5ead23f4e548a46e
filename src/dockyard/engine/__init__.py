"""The container service: create/start/stop/kill/rm, monitors, logs, exec, health, restarts."""
