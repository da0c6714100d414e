// Phone simulator of the WeChat sandbox. Plain JS, no build step.
(function () {
  "use strict";
  var base = document.getElementById("phone").dataset.base;  // /sandbox/phone
  var $ = function (id) { return document.getElementById(id); };
  var state = { current: null, menu: null, templates: 0, seenLog: false, lastLogId: 0 };
  var SEND_TIMEOUT_MS = 20000;  // WeChat waits 5 s and tries 3 times

  function api(path, body) {
    var ctrl = new AbortController();
    var timer = setTimeout(function () { ctrl.abort(); }, SEND_TIMEOUT_MS);
    var opts = { credentials: "same-origin", signal: ctrl.signal, headers: {} };
    if (body !== undefined) {
      opts.method = "POST";
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch(base + path, opts).then(function (res) {
      clearTimeout(timer);
      return res.json().catch(function () { return { ok: false, error: "模拟器接口返回 HTTP " + res.status }; })
        .then(function (data) {
          if (!res.ok && data.ok === undefined) { data = { ok: false, error: "模拟器接口返回 HTTP " + res.status }; }
          return data;
        });
    }, function (err) {
      clearTimeout(timer);
      return { ok: false, error: err.name === "AbortError" ? "等待公众号回复超时" : "网络错误：" + err.message };
    });
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = text; }
    return e;
  }

  // Links in the account's text open in the in-app web view, as the current user (like WeChat).
  function linkified(box, text) {
    var re = /https?:\/\/[^\s<>"'，。！？）]+/g, last = 0, m;
    while ((m = re.exec(text)) !== null) {
      box.appendChild(document.createTextNode(text.slice(last, m.index)));
      var a = el("a", "inline-link", m[0]), url = m[0];
      a.href = "#";
      a.onclick = function (u) { return function (ev) { ev.preventDefault(); openWeb(u); }; }(url);
      box.appendChild(a);
      last = m.index + m[0].length;
    }
    box.appendChild(document.createTextNode(text.slice(last)));
    return box;
  }

  function scrollChat() { var m = document.querySelector("main"); m.scrollTop = m.scrollHeight; }

  // ------------------------------------------------------------ chat rendering
  function addSystem(text) { $("chat").appendChild(el("div", "system", text)); scrollChat(); }

  function addMine(text) {
    var row = el("div", "row me");
    row.appendChild(el("div", "bubble me", text));
    $("chat").appendChild(row); scrollChat();
  }

  function addPending() {
    var row = el("div", "row bot pending-row");
    row.appendChild(el("div", "bubble pending", "对方正在输入…"));
    $("chat").appendChild(row); scrollChat();
    return row;
  }

  function xmlToggle(row, result) {
    if (!result.request_xml && !result.reply_xml) { return; }
    var btn = el("button", "xml-toggle", "查看 XML");
    var pre = el("pre", "xml", "→ 发往 /wechat：\n" + (result.request_xml || "") +
      "\n\n← 回复：\n" + (result.reply_xml || "（空）"));
    pre.hidden = true;
    btn.onclick = function () { pre.hidden = !pre.hidden; };
    row.appendChild(btn); row.appendChild(pre);
  }

  function addReply(result, pendingRow) {
    if (pendingRow) { pendingRow.remove(); }
    var row = el("div", "row bot");
    if (result.error || result.ok === false) {
      row.appendChild(el("div", "bubble error", result.error || "出错了"));
    } else if (!result.reply) {
      row.appendChild(el("div", "system", "（公众号未回复）"));
    } else if (result.reply.type === "news") {
      var box = el("div", "bubble news");
      (result.reply.articles || []).forEach(function (a) {
        var item = el("a", "news-item");
        item.href = "#";
        item.appendChild(el("div", "t", a.title));
        if (a.description) { item.appendChild(el("div", "d", a.description)); }
        item.onclick = function (ev) { ev.preventDefault(); if (a.url) { openWeb(a.url); } };
        box.appendChild(item);
      });
      row.appendChild(box);
    } else {
      row.appendChild(linkified(el("div", "bubble bot"), result.reply.content || ""));
    }
    if (result.detail && result.detail.warning) { row.appendChild(el("div", "muted", "⚠ " + result.detail.warning)); }
    xmlToggle(row, result);
    $("chat").appendChild(row); scrollChat();
  }

  function perform(body, label, mine) {
    if (mine) { addMine(label); } else { addSystem(label); }
    var pending = addPending();
    return api("/api/send", body).then(function (result) {
      addReply(result, pending);
      if (result.open_url) { openWeb(result.open_url); }
      return refreshState();
    });
  }

  // ------------------------------------------------------------ state, users, menu
  function refreshState() {
    return api("/api/state").then(function (s) {
      state.current = s.current; state.menu = s.menu;
      var sel = $("user-select");
      sel.textContent = "";
      var none = el("option", null, s.users.length ? "— 选择用户 —" : "— 还没有用户，请新建 —");
      none.value = ""; sel.appendChild(none);
      s.users.forEach(function (u) {
        var o = el("option", null, u.nickname + (u.subscribed ? "" : "（未关注）"));
        o.value = u.openid;
        if (s.current && s.current.openid === u.openid) { o.selected = true; }
        sel.appendChild(o);
      });
      $("sub-state").textContent = s.current ? (s.current.subscribed ? "已关注" : "未关注") : "";
      $("sub-toggle").hidden = !s.current;
      $("sub-toggle").textContent = s.current && s.current.subscribed ? "取消关注" : "关注";
      $("server-url").textContent = s.server_url;
      $("mode-select").value = s.mode;
      renderMenu(s.menu);
    });
  }

  function renderMenu(menu) {
    var bar = $("menubar"); bar.textContent = ""; $("submenu").hidden = true;
    var buttons = (menu && menu.button) || [];
    buttons.forEach(function (b) {
      var btn = el("button", null, (b.sub_button && b.sub_button.length ? "≡ " : "") + b.name);
      btn.onclick = function () {
        if (b.sub_button && b.sub_button.length) { showSubmenu(b.sub_button); } else { tapMenu(b); }
      };
      bar.appendChild(btn);
    });
  }

  function showSubmenu(items) {
    var box = $("submenu");
    if (!box.hidden) { box.hidden = true; return; }
    box.textContent = "";
    items.forEach(function (b) {
      var btn = el("button", null, b.name);
      btn.onclick = function () { box.hidden = true; tapMenu(b); };
      box.appendChild(btn);
    });
    box.hidden = false;
  }

  function tapMenu(b) {
    showTab("chat");
    if (b.type === "view") { return perform({ kind: "view", url: b.url, name: b.name }, "打开「" + b.name + "」"); }
    if (b.type === "click") { return perform({ kind: "click", key: b.key, name: b.name }, "点击菜单「" + b.name + "」"); }
    addSystem("沙箱不模拟菜单类型 " + b.type);
  }

  // ------------------------------------------------------------ web view (OAuth as the current user)
  function openWeb(url) {
    var openid = state.current ? state.current.openid : "";
    var target = base + "/open?url=" + encodeURIComponent(url) + "&openid=" + encodeURIComponent(openid);
    $("webview-url").textContent = url;
    $("webview-newtab").href = target;
    $("webview-frame").src = target;
    $("webview").hidden = false;
  }

  // ------------------------------------------------------------ template messages
  function renderTemplates(list) {
    var box = $("templates"); box.textContent = "";
    if (!list.length) { box.appendChild(el("p", "empty muted", "还没有收到模板消息")); }
    list.forEach(function (m) {
      var card = el("div", "tpl");
      card.appendChild(el("div", "head", "模板消息 · " + m.template_id));
      card.appendChild(el("div", "time", new Date(m.created_at * 1000).toLocaleString("zh-CN", { timeZone: "Asia/Shanghai" }) +
        " · 回执：" + ({ pending: "待投递", delivered: "已投递", failed: "投递失败" }[m.event_status] || m.event_status)));
      m.fields.forEach(function (f) {
        var row = el("div", "field" + (f.hidden ? " hidden-field" : ""));
        row.appendChild(el("span", "k", f.key + (f.hidden ? "（不再显示）" : "")));
        row.appendChild(el("span", "v", f.value));
        card.appendChild(row);
      });
      if (m.url) {
        var a = el("a", "link", "详情 ›");
        a.href = "#";
        a.onclick = function (ev) { ev.preventDefault(); openWeb(m.url); };
        card.appendChild(a);
      }
      box.appendChild(card);
    });
    var count = $("tpl-count");
    count.hidden = !list.length; count.textContent = String(list.length);
  }

  function showLogRow(r) {
    if (r.kind === "custom") { addReply({ reply: r.reply }); return; }  // customer-service message
    if (r.kind === "text") { addMine(r.summary); } else { addSystem(r.summary); }
    addReply({ reply: r.reply, error: r.error, request_xml: r.request_xml, reply_xml: r.reply_xml });
  }

  function restoreLog(log) {
    var newest = log.length ? log[log.length - 1].id : 0;
    if (!state.seenLog) {
      state.seenLog = true;
      $("chat").textContent = "";
      log.forEach(showLogRow);
    } else {
      // Only messages the account pushed arrive by polling; the user's own actions were shown as sent.
      log.forEach(function (r) { if (r.id > state.lastLogId && r.kind === "custom") { showLogRow(r); } });
    }
    state.lastLogId = Math.max(state.lastLogId, newest);
  }

  function poll() {
    api("/api/inbox").then(function (data) {
      if (data.templates) { renderTemplates(data.templates); }
      if (data.log) { restoreLog(data.log); }
    });
  }

  // ------------------------------------------------------------ tabs and wiring
  function showTab(name) {
    document.querySelectorAll(".tabs button").forEach(function (b) { b.classList.toggle("active", b.dataset.tab === name); });
    document.querySelectorAll(".tab").forEach(function (t) { t.classList.toggle("active", t.id === "tab-" + name); });
    $("composer").hidden = name !== "chat";
  }

  document.querySelectorAll(".tabs button").forEach(function (b) { b.onclick = function () { showTab(b.dataset.tab); }; });
  $("toggle-settings").onclick = function () { $("settings").hidden = !$("settings").hidden; };
  $("new-user-toggle").onclick = function () { $("new-user").hidden = !$("new-user").hidden; $("nickname").focus(); };
  $("webview-close").onclick = function () { $("webview").hidden = true; $("webview-frame").src = "about:blank"; };

  $("new-user").onsubmit = function (ev) {
    ev.preventDefault();
    var subscribe = $("new-subscribe").checked;
    api("/api/users", { nickname: $("nickname").value, subscribe: subscribe }).then(function (r) {
      if (!r.user) { addReply(r); return; }
      $("new-user").hidden = true; $("nickname").value = "";
      state.seenLog = true; state.lastLogId = 0; $("chat").textContent = "";
      addSystem("已切换到新用户「" + r.user.nickname + "」");
      if (r.delivery) { addSystem(r.delivery.summary); addReply(r.delivery); }
      refreshState(); poll();
    });
  };

  $("user-select").onchange = function () {
    var openid = $("user-select").value;
    if (!openid) { return; }
    api("/api/select", { openid: openid }).then(function () {
      state.seenLog = false; state.lastLogId = 0; refreshState(); poll();
    });
  };

  $("sub-toggle").onclick = function () {
    var sub = state.current && state.current.subscribed;
    perform({ kind: sub ? "unsubscribe" : "subscribe" }, sub ? "取消关注" : "关注公众号");
  };

  $("mode-select").onchange = function () { api("/api/mode", { mode: $("mode-select").value }); };

  $("input-row").onsubmit = function (ev) {
    ev.preventDefault();
    var text = $("input").value;
    if (!text.trim()) { return; }
    if (!state.current) { addReply({ error: "请先选择或创建一个用户" }); return; }
    $("input").value = "";
    perform({ kind: "text", content: text }, text, true);
  };

  $("scan-btn").onclick = function () {
    var code = $("scan-code").value.trim();
    if (!code) { return; }
    showTab("chat");
    perform({ kind: "scan", code: code }, "扫描二维码 " + code);
  };

  refreshState().then(poll);
  setInterval(poll, 3000);
})();
