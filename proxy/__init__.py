"""reestr-sidecar: mitmproxy in front of an agency, enforcing its bundle and journaling every message."""
