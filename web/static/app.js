// Progressive enhancement: without JavaScript the form posts to "/" and the server renders the reply.
(function () {
  "use strict";
  var form = document.getElementById("ask-form");
  var transcript = document.getElementById("transcript");
  if (!form || !transcript || !window.fetch) return;
  var sessionId = null;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text; // always text, never HTML
    return node;
  }

  function button(label, onClick) {
    var b = el("button", "button", label);
    b.type = "button";
    b.addEventListener("click", onClick);
    return b;
  }

  function render(reply) {
    var card = el("article", "bot reply-" + reply.kind);
    // The 出典 line of the text becomes a link; the line holding the asked fact comes first and is marked.
    var body = reply.answer, cut = body.lastIndexOf("\n\n出典: ");
    if (cut >= 0 && reply.sources && reply.sources.length) body = body.slice(0, cut);
    if (reply.highlight) {
      var hl = el("p", "highlight");
      hl.appendChild(el("strong", null, "お尋ねの点:"));
      hl.appendChild(document.createTextNode(" "));
      hl.appendChild(el("mark", null, reply.highlight));
      card.appendChild(hl);
    }
    var answer = el("div", "answer");
    body.split("\n").forEach(function (line, i) {
      if (i) answer.appendChild(document.createTextNode("\n"));
      answer.appendChild(reply.highlight && line.trim() === reply.highlight ? el("mark", null, line) : document.createTextNode(line));
    });
    card.appendChild(answer);
    (reply.sources || []).forEach(function (s) {
      var p = el("p", "source", "出典: "), a = el("a", null, s.label || s.title);
      a.href = s.url;
      p.appendChild(a);
      if (s.updated_label) p.appendChild(document.createTextNode(" (更新 " + s.updated_label + ")"));
      card.appendChild(p);
    });
    var options = reply.choices.length ? reply.choices.map(function (c) { return { label: c.label, query: c.query }; })
      : reply.kind === "candidates" ? reply.candidates.map(function (c) { return { label: c.question, query: c.question }; }) : [];
    if (options.length) {
      var list = el("ul", "choices");
      options.forEach(function (o) { var li = el("li"); li.appendChild(button(o.label, function () { ask(o.query); })); list.appendChild(li); });
      card.appendChild(list);
    }
    if (reply.related && reply.related.length) {
      card.appendChild(el("h3", null, "関連する質問"));
      var rel = el("ul", "related");
      reply.related.forEach(function (r) {
        var li = el("li"), a = el("a", null, r.question);
        a.href = "/faqs/" + encodeURIComponent(r.faq_id);
        li.appendChild(a); rel.appendChild(li);
      });
      card.appendChild(rel);
    }
    if (reply.faq_id) {
      var fb = el("p", "feedback", "この回答は役に立ちましたか？ ");
      [["役に立った", true], ["役に立たなかった", false]].forEach(function (pair) {
        fb.appendChild(button(pair[0], function () { sendFeedback(reply, pair[1], fb); }));
      });
      card.appendChild(fb);
    }
    transcript.appendChild(card);
  }

  function sendFeedback(reply, helpful, holder) {
    fetch("/api/feedback", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ faq_id: reply.faq_id, helpful: helpful, query_id: reply.query_id }) })
      .then(function (r) { return r.json(); })
      .then(function (body) { holder.textContent = body.message || "ご意見ありがとうございました。"; });
  }

  function ask(query) {
    transcript.appendChild(el("p", "user", query));
    fetch("/api/ask", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ query: query, session_id: sessionId }) })
      .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
      .then(function (res) {
        if (!res.ok) { transcript.appendChild(el("article", "bot", res.body.detail || "エラーが発生しました。")); return; }
        sessionId = res.body.session_id;
        render(res.body);
      })
      .catch(function () { transcript.appendChild(el("article", "bot", "通信できませんでした。もう一度お試しください。")); });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var input = form.querySelector("input[name=q]");
    var query = input.value.trim();
    if (!query) return;
    input.value = "";
    ask(query);
  });
})();
