"""Inbound HTTP: thin routes that parse, call one service and render."""
