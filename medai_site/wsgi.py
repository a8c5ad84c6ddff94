import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

from medai_site.after_response import wsgi_after_response

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medai_site.settings")
# Work a request defers with after_response() runs once its response is sent.
application = wsgi_after_response(get_wsgi_application())

# Every view's module now, not on the first request (Django imports the URLconf lazily); then
# everything loaded so far (some 300,000 objects: modules, classes, FHIR and pydantic schemas)
# leaves the cyclic garbage collector's reach. Otherwise each of its full collections walked them
# all: about 160 ms of one worker's CPU, every few hundred requests, a pause that set the 99th
# percentile of every endpoint. Nothing loaded here is ever garbage; what requests allocate is
# collected as before.
get_resolver().url_patterns  # noqa: B018  # evaluated for its import of every view
gc.collect()
gc.freeze()
