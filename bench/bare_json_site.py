"""The baseline site of `bench/bench_robots.py`: the product's settings (middleware, database,
DEBUG off) with one bare JSON view as its only URL. Selected with
`DJANGO_SETTINGS_MODULE=bench.bare_json_site`; the product's URLs know nothing of it.

The view does what any Django endpoint must (parse the JSON body, answer JSON) and nothing
else: no authentication, no database query.
"""

import json

from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from core.settings import *  # noqa: F403  (the product's settings, then one change)

ROOT_URLCONF = "bench.bare_json_site"


@csrf_exempt
def bare_json(request):
    body = json.loads(request.body or b"{}")
    return JsonResponse({"ok": True, "echo": body})


urlpatterns = [path("bare/", bare_json)]
