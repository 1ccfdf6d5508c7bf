"""Store backends behind :class:`cse.core.ports.Store`."""
