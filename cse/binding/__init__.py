"""Protocol bindings and I/O edges: HTTP server/client, timers."""
