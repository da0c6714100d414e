"""gunicorn settings for production: `gunicorn -c deploy/gunicorn.conf.py 'app:create_app()'`."""
import multiprocessing
import os

bind = os.environ.get("TRIPACT_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("TRIPACT_WORKERS", multiprocessing.cpu_count() * 2))
worker_class = "gthread"
threads = 4
timeout = 30          # WeChat waits 5 s; anything slow belongs in the outbox
graceful_timeout = 20
max_requests = 5000
max_requests_jitter = 500
accesslog = "-"
forwarded_allow_ips = "127.0.0.1"


def post_worker_init(worker):  # noqa: ANN001 - gunicorn hook signature
    """Once the worker has loaded the app, move everything loaded so far out of the garbage collector's view:
    full collections over ~250k long-lived objects cost ~10 ms per signed agreement otherwise."""
    import gc

    gc.freeze()
