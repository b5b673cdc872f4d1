"""One way of writing dates and times on every page (Django's English default is
"Nov. 24, 2026, 12:26 a.m."): ISO-like, 24-hour, in the server's time zone (UTC)."""

DATE_FORMAT = "Y-m-d"
DATETIME_FORMAT = "Y-m-d H:i"
TIME_FORMAT = "H:i"
SHORT_DATE_FORMAT = DATE_FORMAT
SHORT_DATETIME_FORMAT = DATETIME_FORMAT
