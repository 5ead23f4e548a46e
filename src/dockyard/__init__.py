"""dockyard: a Linux container engine. Keep this module empty: every entry point imports it."""
