import os

from django.core.wsgi import get_wsgi_application

from medai_site.after_response import wsgi_after_response

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medai_site.settings")
# Work a request defers with after_response() runs once its response is sent.
application = wsgi_after_response(get_wsgi_application())
