"""Telling the world what happened: live WebSocket/SSE fan-out, webhooks, the pre-create hook."""
