"""Version numbers the server reports at /api/v1/version. Free of Django: the robot client
compares its own version against `MIN_CLIENT_VERSION`."""

SERVER_VERSION = "0.1.0"
API_VERSION = "1"
# The oldest robot client this server still talks to.
MIN_CLIENT_VERSION = "0.1.0"
