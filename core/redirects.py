"""Where a page may send the browser next: only to this site's own pages.

A `next` field comes from the request (a hidden input filled from the Referer, a link), so
anyone can craft one: following it blindly is an open redirect, and a `javascript:` URL in a
Location header is worse. Django's own check decides what counts as this site.
"""

from django.utils.http import url_has_allowed_host_and_scheme


def own_site_url(request, url: str | None, *, fallback: str) -> str:
    """`url` when it leads to this site (a path, or an absolute URL on this host with a
    scheme no weaker than the request's), otherwise `fallback`."""
    if url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return fallback
