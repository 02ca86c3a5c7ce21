"""Built-in format scanners, each registered under the mlwarden.scanners entry point group."""
