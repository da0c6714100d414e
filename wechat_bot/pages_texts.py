"""What the mobile pages say from Python, in one place for review (page text lives in the templates;
refusals of the workflow carry their own Chinese ``message``)."""
from __future__ import annotations

# ---------------------------------------------------------------- titles of error pages
ERROR_TITLES = {
    400: "请求有误", 403: "无权访问", 404: "页面不存在", 405: "不支持的请求方式",
    409: "内容已变化，请刷新后重试", 413: "上传的内容过大", 429: "操作过于频繁，请稍后再试",
}
ERROR_TITLE_OTHER = "请求未能完成"
WORKFLOW_TITLE_OTHER = "无法完成操作"
CONFLICT_TITLE = "协议已更新"
WRONG_STATE_TITLE = "当前无法办理"
NOT_ALLOWED_TITLE = "无权操作"
NOT_FOUND_TITLE = "协议不存在"
INVALID_INPUT_TITLE = "填写有误"

# ---------------------------------------------------------------- login and forms
CSRF_FAILED = "页面已过期或来源无效，请返回并刷新页面后重试。"
LOGIN_STATE_INVALID = "登录链接无效或已使用，请从公众号菜单重新进入。"
LOGIN_NOT_AUTHORISED_TITLE = "微信登录未完成"
LOGIN_NOT_AUTHORISED = "未获得微信授权，请从公众号菜单重新进入。"
LOGIN_FAILED_TITLE = "微信登录失败"
LOGIN_FAILED = "暂时无法完成微信登录，请稍后从公众号菜单重新进入。"
STAFF_ACCOUNT_DISABLED = "您绑定的单位账号已停用，请联系单位管理员。"
ONLY_FOR = "此页面仅供{who}使用。"
WHO = {"student": "学生", "employer": "用人单位经办人"}
CHECK_MARKED = "请检查标红的项目。"
REQUIRED = "必填"

# ---------------------------------------------------------------- binding
BIND_THROTTLED = "尝试次数过多，请15分钟后再试；如信息确认无误，请联系学校就业部门核对名单。"
BIND_INCOMPLETE = "请完整填写以下信息。"
BIND_ID_LAST6 = "请输入身份证号的最后六位"
SCHOOL_NOT_FOUND = "未找到该学校，请检查学校代码或全称。"
STUDENT_NO_NOT_FOUND = ("在该校学生名单中未找到此学号，请核对学号；"
                        "如确认无误，请联系学校就业部门确认名单已导入。")
STUDENT_MISMATCH = "姓名或身份证号后六位与学校名单不一致，请逐项核对（身份证号末位X不区分大小写）。"
STUDENT_OFF_ROSTER = "您已不在学校当前的学生名单中，请联系学校就业部门。"
STUDENT_BOUND_ELSEWHERE = "该学生已绑定其他微信号。如需更换，请先在原微信号中解绑，或联系学校就业部门。"
STAFF_CODE_MISSING = "请输入绑定码。"
STAFF_CODE_FAILED = "绑定失败，请重试。"
STAFF_OUTCOMES = {
    "invalid": "绑定码无效，请在用人单位管理后台重新生成二维码。",
    "expired": "绑定码已过期，请在用人单位管理后台重新生成二维码。",
    "used": "绑定码已被使用，每个绑定码只能使用一次。",
    "inactive": "该经办人账号已停用，请联系单位管理员。",
    "other_binding": "当前微信已绑定其他身份，请先解绑后再扫码。",
}

# ---------------------------------------------------------------- terms form
SALARY_INVALID = "请填写月薪（元），最多两位小数"
DAMAGES_INVALID = "违约金请填写金额（元），最多两位小数"
PROBATION_INVALID = "试用期请填写月数（整数）"
CONTRACT_YEARS_INVALID = "合同期限请填写年数（整数）"

# ---------------------------------------------------------------- agreements
WRONG_STATE = "协议当前状态为“{status}”，{what}"
NO_CONFIRM_NEEDED = "无需确认。"
NO_SIGNATURE_NEEDED = "现在不需要您签署。"
NO_TERMINATION = "不能办理解约。"
NO_SUCH_ACTION = "不能执行该操作。"
PDF_NOT_READY = "该协议的PDF文件尚未生成。"
PDF_UNREADABLE = "该协议的PDF文件暂时无法读取，请稍后再试。"
EVIDENCE_NOT_READY = "该协议的签署证据报告尚未生成。"
REJECT_REASON = "请填写拒绝原因（不超过500字）"
TERMINATION_REASON = "请填写解约原因（不超过500字）"
ENDED = "协议已结束：{status}{reason}"
NEXT_STEP = {
    # status -> (the student's next step, the employer's)
    "applied": ("等待用人单位确认您的申请。", "请确认或拒绝该学生的申请。"),
    "awaiting_student": ("请阅读协议并手写签名。", "等待学生签署。"),
    "awaiting_school": ("学校正在签署，通常几分钟内完成。", "学校正在签署。"),
    "school_review": ("学校正在审核该协议。", "学校正在审核该协议。"),
    "awaiting_employer": ("等待用人单位盖章签署。", "请选择印章并签署协议。"),
    "completed": ("协议已生效。", "协议已生效，如需解约可发起解约申请。"),
    "terminating": ("用人单位申请解约，请确认是否同意。", "等待学生确认解约。"),
}
ACTION_BUTTONS = {"confirm": "确认或拒绝", "sign": "去签署", "initiate": "发起解约", "answer": "处理解约申请"}

# ---------------------------------------------------------------- signing
SIGN_THROTTLED = "验证失败次数过多，请15分钟后再试。"
ID_LAST6_WRONG = "身份证号后六位不正确，请重新输入。"
SEAL_MISSING = "请选择用于签署的印章。"
PIN_NOT_SET = "您尚未设置签署密码，请先在用人单位管理后台设置。"
PIN_WRONG = "签署密码不正确，请重新输入。"
SIGNATURE_MISSING = "请在签名区域手写签名"
SIGNATURE_TOO_LARGE = "签名图片过大，请清除后重新签名"
SIGNATURE_INVALID = "签名图片无效，请清除后重新签名"
SIGNATURE_SIZE = "签名图片尺寸不正确，请清除后重新签名"
SIGNATURE_NOT_TRANSPARENT = "签名图片须为透明背景，请在页面的签名区域书写"
SIGNATURE_BLANK = "签名为空或过于简单，请完整书写您的姓名"
