"""gunicorn settings shared by `make run` (Procfile) and docker-compose.

The access log leaves out the query string (no %(q)s, no %(r)s request line): search terms and
`next=` redirects can carry PHI, and logs must not.
"""

import os

bind = os.environ.get("MEDAI_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
accesslog = "-"
access_log_format = '%(h)s %(t)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
