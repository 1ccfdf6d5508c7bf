"""Pure protocol core: identifiers, messages, errors, registry, validation,
ports and the dispatcher. Nothing here touches sockets, files or aiohttp."""
