"""gunicorn settings shared by `make run` (Procfile) and docker-compose.

The access log leaves out the query string (no %(q)s, no %(r)s request line): search terms and
`next=` redirects can carry PHI, and logs must not.

Threaded workers (gthread): the advice panel's server-sent-events stream
(predictions.views.advice_stream_view) holds one thread while it waits, never a whole worker
process, and never for long: it ends as soon as the advice is stored, and after
MEDAI_ADVICE_STREAM_SECONDS at most (the browser reconnects). With sync workers two open visit
pages would have blocked every other request.
"""

import os

bind = os.environ.get("MEDAI_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
# Threads per worker: streams and ordinary requests share them (2 x 16 = 32 at once).
threads = int(os.environ.get("WEB_THREADS", "16"))
accesslog = "-"
access_log_format = '%(h)s %(t)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
