"""What a browser test asserts a page did not do."""

from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Watch:
    """What a page did that a test asserts is nothing: console errors (uncaught exceptions
    included) and requests to any host but the server under test."""

    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)


def watch(page, host: str) -> Watch:
    seen = Watch()
    page.on("console", lambda m: seen.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen.errors.append(str(e)))

    def request(r):
        url = urlsplit(r.url)
        if url.scheme in ("http", "https") and url.netloc != host:
            seen.outside.append(r.url)

    page.on("request", request)
    return seen
