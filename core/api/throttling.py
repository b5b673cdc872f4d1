"""Throttles keyed by the caller: robots by robot, people by user, strangers by address."""

from rest_framework.throttling import SimpleRateThrottle

from core.access import is_robot, principal_key


class PrincipalRateThrottle(SimpleRateThrottle):
    def get_rate(self):  # the rate depends on the caller; chosen in allow_request
        return None

    def allow_request(self, request, view):
        user = request.user
        if user is None or not user.is_authenticated:
            self.scope = "anon"
            ident = f"anon:{self.get_ident(request)}"
        else:
            self.scope = "robot" if is_robot(user) else "user"
            ident = principal_key(user)
        self.rate = self.THROTTLE_RATES.get(self.scope)
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self.key = self.cache_format % {"scope": self.scope, "ident": ident}
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        return self.key
