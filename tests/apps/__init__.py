"""Small ASGI apps that tests run in real uvicorn processes (see tests/servers.py)."""
