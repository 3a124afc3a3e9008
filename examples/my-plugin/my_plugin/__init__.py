"""my-plugin: Kong's "Consume External Services" guide plugin as a gateway filter."""
