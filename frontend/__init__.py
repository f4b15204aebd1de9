"""The two browser front ends (the HTML client and the Vue admin dashboard) and the server that hosts them."""

from pathlib import Path

FRONTEND_DIR = Path(__file__).resolve().parent
CLIENT_DIR = FRONTEND_DIR / "client"
ADMIN_DIR = FRONTEND_DIR / "admin"
