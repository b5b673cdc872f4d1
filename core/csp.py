"""Content-Security-Policy for every page: nothing loads from, or talks to, another host.

Pages are served with `DEFAULT_POLICY`. A view can set its own with `@content_security_policy`
(the embedded Rerun viewer needs WebAssembly compilation and blob workers). The viewer would
otherwise send analytics to outside hosts; `connect-src 'self'` blocks that.
"""

from functools import wraps

DEFAULT_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; frame-ancestors 'none'; base-uri 'self'; "
    "form-action 'self'; object-src 'none'"
)

VIEWER_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'wasm-unsafe-eval'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
    "connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'self'; base-uri 'self'; "
    "form-action 'none'; object-src 'none'"
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = DEFAULT_POLICY
        return response


def content_security_policy(policy: str):
    """Serve a view with `policy` instead of the default."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            response = view(*args, **kwargs)
            response["Content-Security-Policy"] = policy
            return response

        return wrapper

    return decorator


def allow_connect_to(policy: str, origin: str | None) -> str:
    """`policy` with `origin` (`https://host[:port]`, from our settings, never from a request)
    added to `connect-src`; the policy unchanged when `origin` is None. The Rerun viewer
    fetches a recording from the object store's origin when files live there."""
    if not origin:
        return policy
    return policy.replace("connect-src 'self'", f"connect-src 'self' {origin}", 1)


# Swagger UI (drf-spectacular's page) starts itself with an inline script.
SWAGGER_POLICY = DEFAULT_POLICY.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'")
