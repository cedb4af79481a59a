"""Serve the app with waitress: `python -m Tumor.serve` (what run.sh and run.bat run).

The waitress options live here, once, derived from the same environment as the settings:
the body limit follows MAX_UPLOAD_MB, and the connection options keep slow or idle clients
from holding the server (see docs/deployment.md).
"""
from __future__ import annotations

import os

# Envelope around the file in a multipart body (the upload middleware allows the same).
MULTIPART_OVERHEAD = 64 * 1024


def upload_limit_bytes(environ=os.environ) -> int:
    """The largest body the app accepts: a slice (MAX_UPLOAD_MB) or a whole series (MAX_SERIES_UPLOAD_MB);
    the upload middleware applies the right one of the two per path."""
    return max(int(environ.get("MAX_UPLOAD_MB", "20")), int(environ.get("MAX_SERIES_UPLOAD_MB", "600"))) * 1024 * 1024


def waitress_options(environ=os.environ) -> dict:
    """Keyword arguments for `waitress.serve`, from the environment."""
    limit = upload_limit_bytes(environ)
    return {
        "host": environ.get("HOST", "127.0.0.1"),
        "port": int(environ.get("PORT", "8000")),
        "threads": int(environ.get("THREADS", "8")),
        # Twice the app's limit: a body a little over MAX_UPLOAD_MB reaches the app, which answers
        # its own 413 page/JSON; waitress refuses far larger ones itself, before reading them.
        "max_request_body_size": 2 * (limit + MULTIPART_OVERHEAD),
        "max_request_header_size": 64 * 1024,
        # Slow clients: a connection idle this long is closed; connections are cheap (no thread
        # is held while a request is still arriving), so allow many, and poll() for over 1024 fds.
        "channel_timeout": int(environ.get("CHANNEL_TIMEOUT", "30")),
        "cleanup_interval": 5,
        "connection_limit": int(environ.get("CONNECTION_LIMIT", "1000")),
        "asyncore_use_poll": True,
        "backlog": 2048,
    }


def header_deadline_channel(seconds: float):
    """Waitress's channel, closing a connection whose request headers are still incomplete
    `seconds` after they began: a client trickling one header line every few seconds (slowloris)
    never idles long enough for channel_timeout. Request bodies (uploads) are not limited by it."""
    import time

    from waitress.channel import HTTPChannel

    class HeaderDeadlineChannel(HTTPChannel):
        header_started = 0.0

        def received(self, data):
            if self.request is None:  # the first bytes of a new request
                self.header_started = time.monotonic()
            result = super().received(data)
            request = self.request
            if request is not None and not request.headers_finished \
                    and time.monotonic() - self.header_started > seconds:
                self.will_close = True  # closed by the main loop, as an idle channel is
            return result

    return HeaderDeadlineChannel


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "Tumor.settings")
    from waitress.server import create_server

    from Tumor.wsgi import application

    options = waitress_options()
    server = create_server(application, **options)
    server.channel_class = header_deadline_channel(float(os.environ.get("HEADER_TIMEOUT", "20")))
    print(f"Serving on http://{options['host']}:{options['port']}/ (Ctrl+C to stop)", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


if __name__ == "__main__":
    main()
