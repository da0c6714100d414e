"""The baseline for bench/wechat.py: a bare Flask + wechatpy endpoint that checks the signature,
parses the message and echoes a text reply – what every WeChat bot does at the least."""
from __future__ import annotations

import os

from flask import Flask, request
from wechatpy import create_reply, parse_message
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.utils import check_signature

TOKEN = os.environ.get("ECHO_TOKEN", "benchtoken")


def create_app() -> Flask:
    app = Flask(__name__)

    @app.route("/wechat", methods=["GET", "POST"])
    def wechat() -> object:
        try:
            check_signature(TOKEN, request.args.get("signature", ""), request.args.get("timestamp", ""),
                            request.args.get("nonce", ""))
        except InvalidSignatureException:
            return "forbidden", 403
        if request.method == "GET":
            return request.args.get("echostr", "")
        msg = parse_message(request.get_data())
        return create_reply(getattr(msg, "content", "success"), msg).render()

    return app
