// Counter lookup: results as you type (debounced), keyboard first, copy as plain text.
(function () {
  "use strict";
  var input = document.getElementById("cq"), field = document.getElementById("field");
  var list = document.getElementById("results"), status = document.getElementById("status");
  var timer = null, active = -1, hits = [];

  function el(tag, cls, text) { var n = document.createElement(tag); if (cls) n.className = cls; if (text !== undefined) n.textContent = text; return n; }

  function highlight(text, terms) {
    // Build text nodes and <mark> elements: never innerHTML, so FAQ text stays text.
    var frag = document.createDocumentFragment(), rest = text;
    var words = terms.filter(function (t) { return t.length > 1; });
    while (rest.length) {
      var best = -1, word = "";
      words.forEach(function (w) { var i = rest.toLowerCase().indexOf(w); if (i >= 0 && (best < 0 || i < best)) { best = i; word = w; } });
      if (best < 0) { frag.appendChild(document.createTextNode(rest)); break; }
      frag.appendChild(document.createTextNode(rest.slice(0, best)));
      frag.appendChild(el("mark", null, rest.slice(best, best + word.length)));
      rest = rest.slice(best + word.length);
    }
    return frag;
  }

  // Phone numbers and URLs in a line become links (tel:, https:); everything else stays text.
  var LINK = /(https?:\/\/[A-Za-z0-9\-._~:\/?#\[\]@!$&'*+,;=%]+)|((?:^|[^0-9])(0[0-9]{1,4}(?:-[0-9]{1,4}-|\([0-9]{1,4}\))[0-9]{3,4})(?![0-9]))/g;
  function linked(text) {
    var frag = document.createDocumentFragment(), at = 0, m;
    LINK.lastIndex = 0;
    while ((m = LINK.exec(text))) {
      var piece = m[1] || m[3], start = m[1] ? m.index : m.index + m[2].length - m[3].length;
      frag.appendChild(document.createTextNode(text.slice(at, start)));
      var a = el("a", null, piece); a.href = m[1] ? piece : "tel:" + piece.replace(/[^0-9]/g, "");
      frag.appendChild(a); at = start + piece.length;
    }
    frag.appendChild(document.createTextNode(text.slice(at)));
    return frag;
  }

  // The Clipboard API is withheld on plain http: then copy from a selected textarea, or leave it selected.
  function copyText(text, button, holder) {
    function done() { button.textContent = "コピーしました"; }
    function fallback() {
      var area = holder.querySelector("textarea.copy") || el("textarea", "copy");
      area.value = text; area.readOnly = true; area.rows = 6;
      area.setAttribute("aria-label", "コピーする回答（選択済み）");
      if (!area.parentNode) holder.appendChild(area);
      area.focus(); area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      if (ok) done(); else button.textContent = "選択しました。Ctrl+C でコピーしてください";
    }
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, fallback);
    else fallback();
  }

  function select(i) {
    var items = list.querySelectorAll("li.result");
    if (!items.length) return;
    active = Math.max(0, Math.min(items.length - 1, i));
    items.forEach(function (li, j) { li.setAttribute("aria-selected", j === active ? "true" : "false"); });
    items[active].focus();
  }

  function render(body) {
    list.textContent = "";
    hits = body.hits;
    status.textContent = body.hits.length + "件（確信度 " + Math.round(body.confidence * 100) + "%）";
    body.hits.forEach(function (h) {
      var li = el("li", "result"); li.tabIndex = -1;
      var title = el("a", null); title.href = "/faqs/" + h.faq_id; title.appendChild(highlight(h.question, h.matched_terms));
      li.appendChild(title);
      var meta = el("p", "meta", h.category.join(" › ") + "｜出典: "), src = el("a", null, h.source_label);
      src.href = h.source_url;
      meta.appendChild(src);
      meta.appendChild(document.createTextNode("｜更新 " + h.updated + "｜スコア " + h.score.toFixed(3)));
      li.appendChild(meta);
      var answer = el("p", "answer"); answer.appendChild(highlight(h.answer, h.matched_terms)); li.appendChild(answer);
      if (h.deadlines && h.deadlines.length) {
        var dates = el("ul", "dates");
        h.deadlines.forEach(function (d) { dates.appendChild(el("li", null, d)); });
        li.appendChild(el("p", "meta", "日程")); li.appendChild(dates);
      }
      if (h.contacts && h.contacts.length) {
        var people = el("ul", "contacts");
        h.contacts.forEach(function (c) { var item = el("li"); item.appendChild(linked(c)); people.appendChild(item); });
        li.appendChild(el("p", "meta", "問合せ先")); li.appendChild(people);
      }
      var url = window.location.origin + "/faqs/" + h.faq_id;
      var copy = el("button", "button", "回答をコピー"); copy.type = "button";
      copy.addEventListener("click", function () { copyText(h.question + "\n\n" + (h.card_text || h.answer) + "\nURL: " + url, copy, li); });
      var memo = el("a", "button", "窓口持参メモを印刷"); memo.href = "/faqs/" + h.faq_id + "/memo";
      var actions = el("p", "actions"); actions.appendChild(copy); actions.appendChild(document.createTextNode(" ")); actions.appendChild(memo);
      li.appendChild(actions);
      list.appendChild(li);
    });
    active = -1;
  }

  function search() {
    var q = input.value.trim();
    if (!q) { list.textContent = ""; status.textContent = ""; return; }
    var url = "/api/search?q=" + encodeURIComponent(q) + (field.value ? "&field=" + encodeURIComponent(field.value) : "");
    fetch(url).then(function (r) { return r.json(); }).then(function (body) { if (body.hits) render(body); else status.textContent = body.detail || ""; });
  }

  input.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(search, 200); });
  field.addEventListener("change", search);
  document.getElementById("counter-form").addEventListener("submit", function (e) { e.preventDefault(); search(); });
  document.addEventListener("keydown", function (e) {
    if (e.key === "/" && document.activeElement !== input && document.activeElement.tagName !== "INPUT") { e.preventDefault(); input.focus(); return; }
    if (e.key === "ArrowDown") { e.preventDefault(); select(active + 1); }
    else if (e.key === "ArrowUp") { e.preventDefault(); if (active <= 0) { input.focus(); active = -1; } else select(active - 1); }
    else if (e.key === "Enter" && active >= 0 && document.activeElement.classList.contains("result")) { window.location = "/faqs/" + hits[active].faq_id; }
  });

  document.getElementById("place-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var out = document.getElementById("offices");
    fetch("/api/contacts?place=" + encodeURIComponent(document.getElementById("place").value))
      .then(function (r) { return r.json(); })
      .then(function (body) {
        out.textContent = "";
        if (!body.offices.length) { out.appendChild(el("p", null, "該当する窓口が見つかりません。")); return; }
        body.offices.forEach(function (o) { out.appendChild(el("p")).appendChild(linked(o.name + "　" + (o.address || "") + "　電話 " + (o.phone || ""))); });
      });
  });
})();
