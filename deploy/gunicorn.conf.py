"""gunicorn settings for production: `gunicorn -c deploy/gunicorn.conf.py 'app:create_app()'`."""
import gc
import multiprocessing
import os

bind = os.environ.get("TRIPACT_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("TRIPACT_WORKERS", multiprocessing.cpu_count() * 2))
worker_class = "gthread"
threads = 4
timeout = 30          # WeChat waits 5 s; anything slow belongs in the outbox
graceful_timeout = 20
# A worker is replaced after this many requests (a guard against slow leaks; about ten minutes at full
# load, hours at a normal one). Each replacement forks from the preloaded master and copies, page by
# page, the ~200 MB it touches: at 5000 requests a worker under full /wechat load lived three seconds
# and throughput fell by half (bench/wechat.py).
max_requests = 1_000_000
max_requests_jitter = 100_000
accesslog = "-"
forwarded_allow_ips = "127.0.0.1"

# The app (pyHanko, fonts, the platform keys) is loaded once, in the master, and every worker is forked
# ready to serve. Without it each worker imports everything itself: about a second of CPU at start and
# again at every max_requests restart – under load, a worker restarts every few seconds.
# create_app opens no connection (database, Redis, storage): each worker opens its own on first use.
preload_app = True


def pre_fork(server, worker):  # noqa: ANN001 - gunicorn hook signature
    """Before each fork, in the master: hand no database connection down (a connection shared by two
    processes corrupts both), and move everything loaded so far out of the garbage collector's view,
    so that the workers' collections neither scan nor write to the ~250k objects they share with the
    master (full collections cost ~10 ms per signed agreement otherwise, and copy-on-write pages)."""
    import models

    if models.db.obj is not None and hasattr(models.db.obj, "close_all"):
        models.db.obj.close_all()
    gc.freeze()
