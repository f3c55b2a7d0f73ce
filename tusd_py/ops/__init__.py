"""Running the server: logs, metrics, health, systemd notify/listen, lifecycle, reconcile, heap."""
