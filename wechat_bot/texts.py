"""Everything the official account says, in one place so it can be reviewed (simplified Chinese).

Placeholders are ``str.format`` fields; links are full URLs built by the caller from
``[server] base_url``. A passive text reply must stay under 2048 bytes (about 680 Chinese
characters), so lists are capped (:data:`LIST_LIMIT`) and end with a link to the full page.
"""
from __future__ import annotations

import re

LIST_LIMIT = 6
"""Most agreements listed in one reply; the rest are behind a link."""

ACCOUNT_INTRO = ("“三方协议”服务号：在微信里完成就业协议（三方协议）的申请、确认、签署和解约，"
                 "进度变化会第一时间通知您。")

WELCOME = ACCOUNT_INTRO + "\n\n首次使用请先绑定身份：\n{bind_url}\n\n" + "回复“帮助”查看全部功能。"
WELCOME_BACK = ("欢迎回来，{name}！\n" + ACCOUNT_INTRO
                + "\n\n回复“进度”查看协议进度，回复“待办”查看待您处理的事项。")

HELP = (
    "可以回复以下关键词：\n"
    "进度 – 查看我的协议进度\n"
    "待办 – 查看待我处理的事项\n"
    "解约 – 查看或办理解约\n"
    "绑定 – 绑定学生或用人单位身份\n"
    "解绑 – 解除本微信的绑定\n"
    "帮助 – 显示本说明\n\n"
    "也可以使用底部菜单。"
)
HELP_UNBOUND = "您还没有绑定身份。学生请用学号绑定，用人单位经办人请扫描单位后台的绑定二维码：\n{bind_url}"

UNKNOWN_TEXT = "抱歉，没有理解您的意思。\n\n" + HELP
UNSUPPORTED_MESSAGE = "暂时只能处理文字消息和菜单。\n\n" + HELP
NEED_BINDING = "请先绑定身份后再使用此功能：\n{bind_url}"
ACCOUNT_DISABLED = "您绑定的用人单位账号已停用，请联系单位管理员。如需改绑，请回复“解绑”。"

# ---------------------------------------------------------------- binding

BIND_INTRO = ("学生：点击下方链接，用学校、学号、姓名和身份证号后六位绑定。\n{bind_url}\n\n"
              "用人单位经办人：请在单位电脑端后台打开“绑定微信”，用微信扫描二维码完成绑定。")
ALREADY_BOUND_STUDENT = ("本微信已绑定学生：{name}（{school}，学号 {student_no}）。\n"
                         "如需解除绑定，请回复“解绑”。")
ALREADY_BOUND_EMPLOYER = "本微信已绑定用人单位经办人：{name}（{employer}）。\n如需解除绑定，请回复“解绑”。"
UNBIND_CONFIRM = "解除绑定后将不再收到协议通知，已有协议不受影响。\n确认解除请回复“确认解绑”。"
UNBIND_DONE = "已解除绑定。需要时可随时重新绑定：\n{bind_url}"
UNBIND_NOTHING = "本微信尚未绑定任何身份。"

STAFF_BOUND = ("绑定成功！您已作为“{employer}”的经办人 {name} 绑定本微信，协议申请与签署提醒将发送到这里。\n"
               "回复“待办”查看待处理事项。")
STAFF_CODE_INVALID = "绑定二维码无效，请在单位后台重新生成绑定二维码后再扫描。"
STAFF_CODE_EXPIRED = "绑定二维码已过期，请在单位后台重新生成后再扫描。"
STAFF_CODE_USED = "该绑定二维码已被使用过，每个二维码只能使用一次。请在单位后台重新生成。"
STAFF_ALREADY_BOUND_OTHER = "本微信已绑定其他身份，请先回复“解绑”解除原有绑定，再重新扫描二维码。"
STAFF_USER_INACTIVE = "该经办人账号已停用，无法绑定。请联系单位管理员。"

# ---------------------------------------------------------------- invitations

INVITE_APPLY = "“{employer}”邀请您签订就业协议。点击填写申请：\n{apply_url}"
INVITE_NEED_BINDING = "“{employer}”邀请您签订就业协议。请先绑定学生身份，绑定后即可申请：\n{bind_url}"
INVITE_HAS_LIVE = ("您已有一份进行中的协议（{employer}，{status}），每位学生同一时间只能有一份有效协议。\n"
                   "查看：{url}")
INVITE_INVALID = "该邀请二维码无效或已停用，请向用人单位索取新的二维码。"
INVITE_NOT_STUDENT = "这是用人单位给学生的邀请二维码，学生扫码后可直接申请签约。"
INVITE_EMPLOYER_GONE = "该用人单位暂不可签约，请联系用人单位。"

# ---------------------------------------------------------------- progress and to-do

PROGRESS_STUDENT = ("协议编号：{number}\n用人单位：{employer}\n当前状态：{status}\n下一步：{next_step}\n"
                    "查看详情：{url}")
PROGRESS_NONE_STUDENT = "您目前没有进行中的协议。\n申请签约：{apply_url}"
PROGRESS_LAST_CLOSED = "最近一份协议（{employer}）状态：{status}。"
PROGRESS_EMPLOYER_HEAD = "“{employer}”进行中的协议："
PROGRESS_EMPLOYER_LINE = "{status}：{count} 份"
PROGRESS_EMPLOYER_NONE = "“{employer}”目前没有进行中的协议。"
PROGRESS_EMPLOYER_TAIL = "全部协议：{url}"

TODO_NONE = "目前没有待您处理的事项。"
TODO_HEAD = "待您处理的事项："
TODO_SIGN_STUDENT = "请签署与“{employer}”的协议：{url}"
TODO_TERMINATION_STUDENT = "“{employer}”申请解约，请确认：{url}"
TODO_CONFIRM_EMPLOYER = "待确认：{student}（{position}）{url}"
TODO_SIGN_EMPLOYER = "待签署：{student}（{position}）{url}"
TODO_MORE = "还有 {count} 项，全部查看：{url}"

TERMINATION_STUDENT_PENDING = ("“{employer}”申请与您解除协议。\n原因：{reason}\n"
                               "请在 {deadline} 前确认同意或拒绝：{url}")
TERMINATION_STUDENT_NONE = "您目前没有待处理的解约申请。解约须由用人单位发起，如有需要请与用人单位协商。"
TERMINATION_EMPLOYER_HOWTO = ("解约只能针对已完成的协议，由用人单位发起、学生确认。"
                              "在协议详情页点击“申请解约”并填写原因即可：")
TERMINATION_EMPLOYER_NONE = "贵单位目前没有可申请解约的已完成协议。"
TERMINATION_EMPLOYER_LINE = "{student}（{number}）{url}"
TERMINATION_EMPLOYER_WAITING = "已发起、等待学生确认的解约：{count} 份。"

APPLY_EMPLOYER = ("协议申请由学生发起。请在单位后台下载“签约邀请二维码”发给学生，学生扫码即可向贵单位申请。"
                  "\n回复“待办”查看待确认的申请。")

# next step per agreement status, for the student and for the employer user
NEXT_STEP_STUDENT = {
    "applied": "等待用人单位确认申请",
    "awaiting_student": "请您签署协议",
    "awaiting_school": "学校正在签署",
    "school_review": "等待学校审核",
    "awaiting_employer": "等待用人单位签署",
    "completed": "协议已生效，可下载协议文件",
    "terminating": "请确认用人单位的解约申请",
}
NEXT_STEP_CLOSED = "可以重新申请签约"

# ---------------------------------------------------------------- template-message wording

NOTICE_PHRASES = {
    # notice -> (phrase ≤ 5 Chinese characters, hint ≤ 20 characters)
    "agreement.applied": ("待确认", "学生提交了协议申请，请确认"),
    "agreement.withdrawn": ("已撤回", "学生撤回了协议申请"),
    "agreement.confirmed": ("待签署", "用人单位已确认，请签署协议"),
    "agreement.rejected": ("已拒绝", "用人单位拒绝了申请"),
    "agreement.school_signed": ("学校已签", "学校已签署，等待用人单位签署"),
    "agreement.awaiting_employer": ("待签署", "学校已签署，请用人单位签署"),
    "agreement.school_review": ("待审核", "协议等待学校审核"),
    "agreement.returned": ("已退回", "学校退回了协议"),
    "agreement.completed": ("已完成", "三方均已签署，协议生效"),
    "agreement.cancelled": ("已作废", "学校作废了协议"),
    "agreement.expired": ("已过期", "未在期限内处理，协议已过期"),
    "termination.requested": ("待确认", "用人单位申请解约，请确认"),
    "termination.agreed": ("已解约", "学生同意解约，协议已解除"),
    "termination.refused": ("已拒绝", "学生拒绝解约，协议继续有效"),
    "termination.expired": ("已过期", "学生未在期限内确认解约"),
}
NOTICE_FALLBACK = ("有更新", "协议状态有更新")


_URLISH = re.compile(r"(?i)(?<=[A-Za-z0-9])\.(?=[A-Za-z])|://")


def inert(text: str) -> str:
    """User-supplied text (a termination reason, a position) to quote in a bot reply. WeChat makes
    bare URLs in text messages clickable, so "://" and the dots of domain names are written
    full-width: the official account's only links are its own."""
    return _URLISH.sub(lambda m: "：／／" if m.group(0) == "://" else "．", text)
