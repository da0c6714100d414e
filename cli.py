"""The `tripact` command. Every error is one clear line on stderr and a non-zero exit, never a traceback."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

import peewee as pw

import models
import redaction
import workflow
from settings import Settings, SettingsError, load_settings

log = logging.getLogger("tripact")

EXIT_ERROR = 1
EXIT_CANNOT_VERIFY = 3  # `tripact verify`: 0 valid, 1 invalid, 2 not a readable PDF, 3 could not check at all
EXIT_USAGE = 2


class CommandError(Exception):
    """A user-facing failure of a command (exit code 1 unless given)."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def _port(raw: str) -> int:
    """A TCP port for --port: 1 to 65535 (the socket layer would wrap 70000 round to 4464)."""
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number (1-65535): {raw!r}")
    return int(raw)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2
        raise CommandError(f"{self.prog}: {message}", EXIT_USAGE)


def _services(args: argparse.Namespace, need_schema: bool = True) -> Settings:
    from app import configure_services

    settings = load_settings(args.config)
    settings.instance_dir.mkdir(parents=True, exist_ok=True)
    configure_services(settings)
    models.db.connect(reuse_if_open=True)
    if need_schema:
        current = models.schema_version()
        if current < models.LATEST:
            raise CommandError(f"database schema is at version {current}, this release needs "
                               f"{models.LATEST}: run `tripact db upgrade` (or `tripact init`)")
    return settings


# ---------------------------------------------------------------- commands

def cmd_init(args: argparse.Namespace) -> int:
    """Create the instance folder and the database schema; safe to run again."""
    import documents

    settings = _services(args, need_schema=False)
    applied = models.upgrade()
    pki = documents.create_pki(settings)
    print(f"instance: {settings.instance_dir}")
    print(f"platform CA: {pki.root_cert.subject.rfc4514_string()} ({settings.pki_path})")
    print(f"database: schema version {models.schema_version()}" + (f" (applied {applied})" if applied else ""))
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    _services(args, need_schema=False)
    before = models.schema_version()
    applied = models.upgrade()
    print(f"schema version {before} -> {models.schema_version()}" if applied
          else f"schema already at version {before}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import demo

    settings = _services(args)
    if settings.production:
        raise CommandError("refusing to seed demo accounts (with a published password) in production mode")
    if demo.seeded():
        print("demo data already present; nothing to do")
        return 0
    summary = demo.seed(sandbox=settings.wechat.sandbox, menu=settings.wechat.menu)
    print("demo data created:")
    for status, n in sorted(summary["agreements"].items()):
        print(f"  {workflow.STATUS_LABELS.get(status, status)} ({status}): {n}")
    print(f"log-ins use the demo password {summary['password']} (employer signing PIN {summary['pin']})")
    for line in summary["wechat"]:
        print(f"  {line}")
    if settings.wechat.sandbox:
        print(f"phone simulator: {settings.server.base_url.rstrip('/')}/sandbox/phone")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from app import create_app

    settings = load_settings(args.config)
    app = create_app(settings)
    sched = None
    if settings.scheduler.in_process:
        import jobs

        sched = jobs.start_scheduler(settings.scheduler.outbox_interval_seconds,
                                     settings.scheduler.expiry_interval_seconds)
    host, port = args.host or settings.server.host, args.port or settings.server.port
    print(f"tripact serving on http://{host}:{port}/ (Ctrl+C to stop)")
    try:
        app.run(host=host, port=port, threaded=True, use_reloader=False)
    finally:
        if sched is not None:
            sched.shutdown(wait=False)
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    import time

    import jobs

    settings = _services(args)
    sched = jobs.start_scheduler(settings.scheduler.outbox_interval_seconds,
                                 settings.scheduler.expiry_interval_seconds, lease=True)
    print("scheduler running (Ctrl+C to stop)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sched.shutdown()
    return 0


def cmd_jobs_run(args: argparse.Namespace) -> int:
    import jobs

    _services(args)
    print(f"ran {jobs.drain()} jobs")
    return 0


def _find_agreement(ref: str) -> models.Agreement:
    a = None
    if ref.isascii() and ref.isdigit() and len(ref) < 12:
        a = models.Agreement.get_or_none(models.Agreement.id == int(ref))
    a = a or models.Agreement.get_or_none(models.Agreement.number == ref)
    if a is None:
        raise CommandError(f"no agreement {ref!r} (give its id or number)")
    return a


def _summary(a: models.Agreement) -> dict[str, Any]:
    from codes import mask_id

    return {"id": a.id, "number": a.number, "status": a.status, "status_label": workflow.STATUS_LABELS[a.status],
            "student": a.student_name, "student_id_number": mask_id(a.id_number), "school": a.school_name,
            "employer": a.employer_name, "position": a.position,
            "created_at": a.created_at.isoformat() + "Z", "updated_at": a.updated_at.isoformat() + "Z"}


def cmd_agreements_list(args: argparse.Namespace) -> int:
    _services(args)
    q = models.Agreement.select().order_by(models.Agreement.id)
    if args.status:
        if args.status not in workflow.STATUS_LABELS:
            raise CommandError(f"unknown status {args.status!r}; one of: {', '.join(workflow.STATUS_LABELS)}",
                               EXIT_USAGE)
        q = q.where(models.Agreement.status == args.status)
    rows = [_summary(a) for a in q]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    for r in rows:
        print(f"{r['id']:>5}  {r['number']:<20} {r['status']:<18} {r['student']:<6} {r['employer']}")
    print(f"{len(rows)} agreements")
    return 0


def cmd_agreements_show(args: argparse.Namespace) -> int:
    _services(args)
    a = _find_agreement(args.id)
    data = _summary(a)
    data["events"] = [{"seq": e.seq, "action": e.action, "actor": f"{e.actor_type}:{e.actor_name}",
                       "to": e.to_status, "at": e.created_at.isoformat() + "Z", "details": e.details}
                      for e in models.AgreementEvent.chain(a.id)]
    data["signatures"] = [{"party": s.party, "signer": s.signer_name, "at": s.signed_at.isoformat() + "Z",
                           "document_sha256": s.document_sha256} for s in a.signatures]
    print(json.dumps(data, ensure_ascii=False, indent=2))
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    _services(args)
    ids = [_find_agreement(args.id).id] if args.id else [a.id for a in models.Agreement.select(models.Agreement.id)]
    bad = 0
    for agreement_id in ids:
        problem = models.AgreementEvent.verify_chain(agreement_id)
        if problem:
            bad += 1
            print(f"agreement {agreement_id}: BROKEN – {problem}")
    print(f"{len(ids) - bad} of {len(ids)} event chains verified" + (f", {bad} broken" if bad else ""))
    return 1 if bad else 0


def cmd_agreements_export(args: argparse.Namespace) -> int:
    import storage

    _services(args)
    a = _find_agreement(args.id)
    if not a.document_key:
        raise CommandError(f"agreement {a.number} has no signed document yet (status {a.status})")
    try:
        data = storage.get_storage().get(a.document_key)
    except storage.StorageError as exc:
        raise CommandError(f"agreement {a.number}: its signed document cannot be read from the store ({exc})") from exc
    with open(args.file, "wb") as fh:
        fh.write(data)
    print(f"wrote {args.file} ({len(data)} bytes, {workflow.STATUS_LABELS[a.status]}, sha256 {a.document_sha256})")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    import documents
    import signing

    settings = _services(args)
    try:
        with open(args.file, "rb") as fh:
            pdf = fh.read(settings.server.max_upload_mb * 1024 * 1024 * 5 + 1)
    except OSError as exc:
        raise CommandError(f"cannot read {args.file}: {exc.strerror}", 2) from exc
    try:
        report = documents.verify_document(settings, pdf)
    except signing.SigningError as exc:  # no platform keys, wrong master secret: nothing was checked
        raise CommandError(f"cannot verify: {exc}", EXIT_CANNOT_VERIFY) from exc
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(f"{args.file}: {report.reason_en}")
        for sig in report.signatures:
            print(f"  {sig.field_name}: {'valid' if sig.ok else 'INVALID'} – {sig.signer_subject} "
                  f"{sig.signing_time or ''}".rstrip())
    return signing.exit_code(report)


def cmd_wechat_menu(args: argparse.Namespace) -> int:
    from wechatpy.exceptions import WeChatClientException

    from wechat_bot.client import make_client

    settings = _services(args)
    if not settings.wechat.menu:
        raise CommandError("[wechat] menu is empty: define the menu in the settings file first")
    try:
        make_client(settings).menu.create({"button": settings.wechat.menu})
    except WeChatClientException as exc:
        raise CommandError(f"WeChat refused the menu: {exc.errcode} {exc.errmsg}") from exc
    except OSError as exc:
        raise CommandError(f"cannot reach the WeChat API: {exc}") from exc
    print(f"menu with {len(settings.wechat.menu)} buttons pushed to {settings.wechat.appid}")
    return 0


# ---------------------------------------------------------------- parser and entry point

def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tripact", description="tripact – electronic tripartite employment agreements")
    p.add_argument("--config", help="settings file (default: $TRIPACT_CONFIG or instance/config.toml)")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add(name: str, fn: Callable[[argparse.Namespace], int], help: str, parent: Any = sub) -> Any:
        sp = parent.add_parser(name, help=help)
        sp.set_defaults(func=fn)
        return sp

    add("init", cmd_init, "create the instance folder and database (idempotent)")
    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True,
                                                                     parser_class=_Parser)
    add("upgrade", cmd_db_upgrade, "bring the schema to this release's version", db)
    add("demo", cmd_demo, "seed demo schools, employers, students and agreements")
    serve = add("serve", cmd_serve, "serve the web app (development server)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=_port)
    add("scheduler", cmd_scheduler, "run periodic jobs (outbox, expiry) holding a database lease")
    jb = sub.add_parser("jobs", help="outbox jobs").add_subparsers(dest="jobs_command", required=True,
                                                                   parser_class=_Parser)
    add("run", cmd_jobs_run, "run every due outbox job now", jb)
    ag = sub.add_parser("agreements", help="agreements").add_subparsers(dest="ag_command", required=True,
                                                                        parser_class=_Parser)
    ls = add("list", cmd_agreements_list, "list agreements", ag)
    ls.add_argument("--status", help="only this status")
    ls.add_argument("--json", action="store_true", help="JSON output")
    add("show", cmd_agreements_show, "show one agreement with its events", ag).add_argument("id")
    au = sub.add_parser("audit", help="audit trail").add_subparsers(dest="audit_command", required=True,
                                                                    parser_class=_Parser)
    add("verify", cmd_audit_verify, "verify the event hash chains", au).add_argument("id", nargs="?")
    ex = add("export", cmd_agreements_export, "write the signed PDF of an agreement", ag)
    ex.add_argument("id")
    ex.add_argument("file")
    vf = add("verify", cmd_verify, "verify a signed agreement PDF (exit 0 valid, 1 invalid, 2 unreadable)")
    vf.add_argument("file")
    vf.add_argument("--json", action="store_true", help="JSON report")
    wx = sub.add_parser("wechat", help="WeChat official account").add_subparsers(
        dest="wechat_command", required=True, parser_class=_Parser)
    add("menu", cmd_wechat_menu, "push the custom menu from the settings to WeChat", wx)
    for hook in EXTRA_COMMANDS:
        hook(sub, add)
    return p


# Other rooms (signing, wechat) add subcommands here: fn(subparsers, add) -> None.
EXTRA_COMMANDS: list[Callable[[Any, Any], None]] = []


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    redaction.install()
    logging.basicConfig(level=logging.INFO if "-v" in argv or "--verbose" in argv else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args))
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except SettingsError as exc:
        print(f"error: settings: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except workflow.WorkflowError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    except pw.OperationalError as exc:
        print(f"error: database: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return EXIT_ERROR
    except pw.PeeweeException as exc:
        print(f"error: database: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_ERROR
    finally:
        if not models.db.is_closed() if models.db.obj is not None else False:
            models.db.close()


if __name__ == "__main__":
    sys.exit(main())
