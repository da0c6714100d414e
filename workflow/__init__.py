"""The agreement state machine: the ONLY code that changes an agreement's state.

Life cycle (DOMAIN.md §1)::

    applied --confirm--> awaiting_student --student_sign--> awaiting_school --(auto)--> awaiting_employer
       |                                                         |  (blocked)              |
       +--withdraw/reject/expire                           school_review --approve--------+
                                                                 +--return--> returned    |
    awaiting_employer --employer_sign--> completed --initiate_termination--> terminating
    terminating --agree--> terminated;  --refuse/expire--> completed
    any live state --cancel (school)--> cancelled

Every transition runs in one database transaction that (1) checks who may do it and in which
state, (2) moves the agreement with an optimistic version check, so that of two conflicting
transitions exactly one wins and the other gets :class:`Conflict`, (3) appends its audit event to
the agreement's hash chain and (4) queues the notifications it causes in the outbox.

The package's modules: ``vocabulary`` (states, errors, Actor, Terms), ``core`` (the transition
machinery and configuration), ``applying``, ``signing_steps`` and ``closing`` (the transitions).
Everything public is imported here: callers use ``workflow.apply(...)``, ``workflow.Actor``…
"""
from __future__ import annotations

from workflow.applying import apply, confirm, new_verify_code, reject, withdraw
from workflow.closing import agree_termination, cancel, expire_overdue, initiate_termination, refuse_termination
from workflow.core import (
    DocumentSigner,
    RecordingSigner,
    SignedRevision,
    _config,
    configure,
    content_digest,
)
from workflow.signing_steps import (
    MAX_SIGNATURE_IMAGE,
    active_school_seal,
    employer_sign,
    school_approve,
    school_auto_sign,
    school_auto_sign_failed,
    school_blockers,
    school_return,
    student_sign,
)
from workflow.vocabulary import (
    ACTION_LABELS,
    CANCEL_KINDS,
    CONFLICT_MESSAGE,
    EMPLOYER_DETAIL_FIELDS,
    FINAL,
    LIVE,
    PARTIES,
    STATUS_LABELS,
    Actor,
    Conflict,
    InvalidInput,
    NotAllowed,
    NotFound,
    SigningUnavailable,
    Terms,
    WorkflowError,
    WrongState,
)

__all__ = [
    # states and vocabulary
    "STATUS_LABELS", "ACTION_LABELS", "LIVE", "FINAL", "PARTIES", "CANCEL_KINDS", "EMPLOYER_DETAIL_FIELDS",
    "CONFLICT_MESSAGE", "MAX_SIGNATURE_IMAGE", "Actor", "Terms",
    # errors
    "WorkflowError", "NotFound", "NotAllowed", "WrongState", "Conflict", "InvalidInput", "SigningUnavailable",
    # configuration and the signing step
    "configure", "DocumentSigner", "RecordingSigner", "SignedRevision", "content_digest", "_config",
    # transitions
    "apply", "withdraw", "confirm", "reject", "student_sign", "school_auto_sign", "school_auto_sign_failed",
    "school_approve", "school_return", "employer_sign", "initiate_termination", "agree_termination",
    "refuse_termination", "cancel", "expire_overdue",
    # queries the surfaces share
    "school_blockers", "active_school_seal", "new_verify_code",
]
