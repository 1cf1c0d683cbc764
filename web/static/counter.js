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

  function select(i) {
    var items = list.querySelectorAll("li");
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
      var copy = el("button", "button", "回答をコピー"); copy.type = "button";
      copy.addEventListener("click", function () { navigator.clipboard && navigator.clipboard.writeText(h.question + "\n" + h.answer).then(function () { copy.textContent = "コピーしました"; }); });
      li.appendChild(copy);
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
        body.offices.forEach(function (o) { out.appendChild(el("p", null, o.name + "　" + (o.address || "") + "　電話 " + (o.phone || ""))); });
      });
  });
})();
