"""Tables of the WeChat surface: the shared access-token store and lock (every deployment) and the
state of the local WeChat sandbox (``sandbox_*``, demo and tests only).

Times that decide expiry are float epoch seconds (``time.time()``), not datetimes: tokens, codes and
leases are compared with sub-second precision and across processes.
"""

from __future__ import annotations

import json
import time
from typing import Any

import peewee as pw

import models


class WechatSession(models.BaseModel):
    """Key/value store behind wechatpy's session storage when Redis is not configured
    (the access token shared by every process)."""

    id = pw.AutoField()
    key = pw.CharField(max_length=191, unique=True)
    value = pw.TextField()
    expires_at = pw.DoubleField(null=True)

    class Meta:
        table_name = "wechat_session"


class WechatLock(models.BaseModel):
    """A named lease: whoever holds an unexpired row may refresh the access token."""

    id = pw.AutoField()
    name = pw.CharField(max_length=191, unique=True)
    holder = pw.CharField(max_length=64)
    expires_at = pw.DoubleField()

    class Meta:
        table_name = "wechat_lock"


# ---------------------------------------------------------------- sandbox state


class SandboxUser(models.BaseModel):
    """A simulated WeChat user of the sandbox official account."""

    id = pw.AutoField()
    openid = pw.CharField(max_length=64, unique=True)
    nickname = pw.CharField(max_length=64)
    subscribed = pw.BooleanField(default=False)
    subscribe_time = pw.DoubleField(null=True)
    qr_scene = pw.CharField(max_length=64, default="")
    created_at = pw.DoubleField(default=time.time)

    class Meta:
        table_name = "sandbox_user"


class SandboxToken(models.BaseModel):
    """Tokens issued by the sandbox: ``client`` (cgi-bin access token), ``oauth`` and ``oauth_refresh``."""

    id = pw.AutoField()
    token = pw.CharField(max_length=191, unique=True)
    kind = pw.CharField(max_length=16, index=True)
    openid = pw.CharField(max_length=64, default="")
    scope = pw.CharField(max_length=32, default="")
    issued_at = pw.DoubleField(default=time.time)
    expires_at = pw.DoubleField()
    superseded_at = pw.DoubleField(null=True)

    class Meta:
        table_name = "sandbox_token"


class SandboxOAuthCode(models.BaseModel):
    """A web-authorisation code: single use, short-lived."""

    id = pw.AutoField()
    code = pw.CharField(max_length=64, unique=True)
    openid = pw.CharField(max_length=64)
    scope = pw.CharField(max_length=32)
    expires_at = pw.DoubleField()
    used_at = pw.DoubleField(null=True)

    class Meta:
        table_name = "sandbox_oauth_code"


class SandboxKV(models.BaseModel):
    """Small sandbox settings and singletons (the menu, the message mode)."""

    id = pw.AutoField()
    key = pw.CharField(max_length=64, unique=True)
    value = pw.TextField()

    class Meta:
        table_name = "sandbox_kv"

    @classmethod
    def read(cls, key: str, default: Any = None) -> Any:
        row = cls.get_or_none(cls.key == key)
        return default if row is None else json.loads(row.value)

    @classmethod
    def write(cls, key: str, value: Any) -> None:
        text = json.dumps(value, ensure_ascii=False)
        with models.db.atomic():
            if not cls.update(value=text).where(cls.key == key).execute():
                try:
                    with models.db.atomic():
                        cls.create(key=key, value=text)
                except pw.IntegrityError:
                    cls.update(value=text).where(cls.key == key).execute()

    @classmethod
    def remove(cls, key: str) -> None:
        cls.delete().where(cls.key == key).execute()


class SandboxTemplateMessage(models.BaseModel):
    """A template message the app sent, as the user's phone would receive it."""

    id = pw.AutoField()
    msgid = pw.BigIntegerField(unique=True)
    openid = pw.CharField(max_length=64, index=True)
    template_id = pw.CharField(max_length=128)
    url = pw.TextField(default="")
    miniprogram = models.JSONField(null=True)
    data_json = pw.TextField(default="{}")  # as sent, key order kept (the order phones show)
    client_msg_id = pw.CharField(max_length=64, default="")
    created_at = pw.DoubleField(default=time.time)
    # TEMPLATESENDJOBFINISH delivery to the app: pending / delivered / failed
    event_status = pw.CharField(max_length=12, default="pending")
    event_attempts = pw.IntegerField(default=0)
    event_error = pw.TextField(default="")

    class Meta:
        table_name = "sandbox_template_message"
        indexes = ((("openid", "client_msg_id"), False),)

    @property
    def data(self) -> dict[str, Any]:
        return json.loads(self.data_json)  # type: ignore[no-any-return]


class SandboxQRCode(models.BaseModel):
    """A parametric QR code created through /cgi-bin/qrcode/create."""

    id = pw.AutoField()
    ticket = pw.CharField(max_length=191, unique=True)
    code = pw.CharField(max_length=64, unique=True)  # last part of the QR url
    action_name = pw.CharField(max_length=24)
    scene = pw.CharField(max_length=64)  # scene_id as text or scene_str
    expires_at = pw.DoubleField(null=True)  # None: permanent
    created_at = pw.DoubleField(default=time.time)

    class Meta:
        table_name = "sandbox_qrcode"

    @property
    def permanent(self) -> bool:
        return self.action_name.startswith("QR_LIMIT")


class SandboxMessageLog(models.BaseModel):
    """What the simulator sent to the app's /wechat endpoint and what came back (for the phone page)."""

    id = pw.AutoField()
    openid = pw.CharField(max_length=64, index=True)
    kind = pw.CharField(max_length=24)  # text / event:subscribe / ...
    summary = pw.TextField(default="")
    request_xml = pw.TextField(default="")
    reply_xml = pw.TextField(default="")
    reply = models.JSONField(null=True)
    error = pw.TextField(default="")
    created_at = pw.DoubleField(default=time.time)

    class Meta:
        table_name = "sandbox_message_log"


SESSION_MODELS: list[type[models.BaseModel]] = [WechatSession, WechatLock]
SANDBOX_MODELS: list[type[models.BaseModel]] = [
    SandboxUser,
    SandboxToken,
    SandboxOAuthCode,
    SandboxKV,
    SandboxTemplateMessage,
    SandboxQRCode,
    SandboxMessageLog,
]

models.register_models(*SESSION_MODELS, *SANDBOX_MODELS)
