"""`make run`: serve the app on loopback with the embedded defaults (development only)."""

from __future__ import annotations

import argparse

from werkzeug.serving import run_simple

from billing import create_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    app = create_app()
    print(f"clinic billing API on http://127.0.0.1:{args.port} (docs: /docs)", flush=True)
    print(f"database: {app.config['DATABASE_URL']}", flush=True)
    run_simple("127.0.0.1", args.port, app, threaded=True)


if __name__ == "__main__":
    main()
