// Progressive enhancement: without JavaScript the forms post to the server, which renders the reply.
// With it, each reply comes from /fragments/reply: the same template, so links, ふりがな, やさしい日本語
// and the hidden 「回答」 heading are the same either way. Server HTML is escaped there; user text is
// only ever set as text here.
(function () {
  "use strict";
  var form = document.getElementById("ask-form");
  var transcript = document.getElementById("transcript");
  if (!window.fetch) return;
  var sessionId = null;
  var embedded = document.body.classList.contains("embed");
  var params = new URLSearchParams(window.location.search);
  var prefs = ["ruby", "easy"].filter(function (p) { return params.has(p); })
    .map(function (p) { return p + "=" + encodeURIComponent(params.get(p)); });
  if (embedded) prefs.push("embed=1");
  var fragmentUrl = "/fragments/reply" + (prefs.length ? "?" + prefs.join("&") : "");

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text; // always text, never HTML
    return node;
  }

  function collapseFields() {
    var fields = document.getElementById("fields");
    if (fields) fields.open = false; // on a phone the field buttons would push the chat below the fold
  }

  function show(node) {
    transcript.appendChild(node);
    node.scrollIntoView({ block: "start", behavior: "smooth" });
  }

  function userLine(text) {
    var p = el("p", "user");
    p.appendChild(el("span", "visually-hidden", "あなた: "));
    p.appendChild(document.createTextNode(text));
    transcript.appendChild(p);
  }

  function ask(query, none) {
    collapseFields();
    userLine(none ? "どれにも当てはまらない" : query);
    fetch(fragmentUrl, { method: "POST", headers: { "Content-Type": "application/json" }, credentials: "same-origin",
      body: JSON.stringify({ query: query || "", session_id: sessionId, none: !!none }) })
      .then(function (r) {
        sessionId = r.headers.get("X-Govfaq-Session") || sessionId;
        return r.text().then(function (html) { return { ok: r.ok || r.status === 429, html: html }; });
      })
      .then(function (res) {
        if (!res.ok) { show(el("article", "bot", "エラーが発生しました。")); return; }
        var holder = document.createElement("template");
        holder.innerHTML = res.html; // rendered and escaped by the server's template
        var card = holder.content.firstElementChild;
        if (card) show(card);
      })
      .catch(function () { show(el("article", "bot", "通信できませんでした。もう一度お試しください。")); });
  }

  function sendFeedback(fb, helpful) {
    var comment = fb.querySelector("textarea");
    fetch("/api/feedback", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ faq_id: fb.dataset.faq, helpful: helpful, query_id: fb.dataset.query || null,
        comment: !helpful && comment && comment.value.trim() ? comment.value.trim() : null }) })
      .then(function (r) { return r.json(); })
      .then(function (body) {
        fb.textContent = "";
        var p = el("p", null, body.message || "ご意見ありがとうございました。");
        p.setAttribute("role", "status");
        fb.appendChild(p);
      });
  }

  document.addEventListener("submit", function (event) {
    var target = event.target;
    if (form && target === form) {
      event.preventDefault();
      var input = form.querySelector("input[name=q]");
      var query = input.value.trim();
      if (!query) return;
      input.value = "";
      ask(query);
    } else if (target.hasAttribute("data-ask") && event.submitter) {
      event.preventDefault();
      if (event.submitter.name === "none") ask("", true); else ask(event.submitter.value);
    } else if (target.classList.contains("feedback") && event.submitter) {
      event.preventDefault();
      var helpful = event.submitter.value === "1";
      var details = target.querySelector("details");
      // 役に立たなかった: first open the comment box; its 送信する button sends (with or without a comment).
      if (!helpful && details && !details.open && !details.contains(event.submitter)) {
        details.open = true;
        details.querySelector("textarea").focus();
        return;
      }
      sendFeedback(target, helpful);
    }
  });
})();
// Inside the widget's frame: Esc asks the host page to close the chat (it returns focus to its button).
(function () {
  "use strict";
  if (!document.body.classList.contains("embed") || window.parent === window) return;
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape") window.parent.postMessage({ govfaq: "close" }, "*");
  });
})();
