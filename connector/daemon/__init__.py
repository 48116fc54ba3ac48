"""The long-running ``ds-connector daemon``: APScheduler jobs in the process's event loop, the
systemd notify protocol, signals, and the heartbeat file ``status`` reads."""
