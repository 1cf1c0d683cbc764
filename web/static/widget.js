// govfaq chat widget. A municipality adds to its page:
//   <script src="https://FAQ-SERVICE/widget.js" defer></script>
// (and lists its origin in GOVFAQ_EMBED_ORIGINS). A labelled button opens the chat (/embed) in a
// dialog; focus moves into the dialog, Esc or 閉じる closes it, and focus returns to the button.
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__govfaqWidget) return;
  window.__govfaqWidget = true;
  var origin = new URL(script.src, window.location.href).origin;
  var label = script.getAttribute("data-label") || "よくある質問チャットで質問する";

  function styled(tag, css) {
    var node = document.createElement(tag);
    Object.keys(css).forEach(function (k) { node.style[k] = css[k]; }); // CSSOM: allowed under a strict CSP
    return node;
  }

  var launcher = styled("button", { position: "fixed", right: "1rem", bottom: "1rem", zIndex: "2147483000",
    minHeight: "48px", padding: ".6rem 1.1rem", font: "inherit", fontSize: "16px", fontWeight: "bold",
    color: "#ffffff", background: "#0b57a4", border: "2px solid #ffffff", borderRadius: "2rem",
    boxShadow: "0 2px 8px rgba(0,0,0,.35)", cursor: "pointer" });
  launcher.type = "button";
  launcher.className = "govfaq-launcher";
  launcher.textContent = label;
  launcher.setAttribute("aria-haspopup", "dialog");
  launcher.setAttribute("aria-expanded", "false");

  var dialog = null, frame = null;

  function isOpen() { return !!dialog && dialog.style.display !== "none"; }

  function close() {
    if (!isOpen()) return;
    dialog.style.display = "none";
    launcher.setAttribute("aria-expanded", "false");
    launcher.focus();
  }

  function build() {
    dialog = styled("div", { position: "fixed", right: "1rem", bottom: "4.5rem", zIndex: "2147483001",
      width: "min(26rem, calc(100vw - 2rem))", height: "min(40rem, calc(100vh - 6rem))", background: "#ffffff",
      border: "2px solid #0b57a4", borderRadius: ".75rem", boxShadow: "0 4px 16px rgba(0,0,0,.35)",
      display: "flex", flexDirection: "column", overflow: "hidden" });
    dialog.className = "govfaq-dialog";
    dialog.setAttribute("role", "dialog");
    dialog.setAttribute("aria-modal", "false");
    dialog.setAttribute("aria-label", "よくある質問チャット");
    var bar = styled("div", { display: "flex", justifyContent: "space-between", alignItems: "center",
      padding: ".25rem .5rem", background: "#0b57a4", color: "#ffffff" });
    var title = styled("span", { fontWeight: "bold", fontSize: "16px" });
    title.textContent = "よくある質問チャット";
    var shut = styled("button", { minHeight: "44px", minWidth: "44px", font: "inherit", fontSize: "16px", color: "#0b57a4",
      background: "#ffffff", border: "2px solid #ffffff", borderRadius: ".5rem", cursor: "pointer" });
    shut.type = "button";
    shut.className = "govfaq-close";
    shut.textContent = "閉じる";
    shut.setAttribute("aria-label", "チャットを閉じる");
    shut.addEventListener("click", close);
    bar.appendChild(title);
    bar.appendChild(shut);
    frame = styled("iframe", { flex: "1", width: "100%", border: "0" });
    frame.title = "よくある質問チャット";
    frame.src = origin + "/embed";
    dialog.appendChild(bar);
    dialog.appendChild(frame);
    dialog.addEventListener("keydown", function (e) { if (e.key === "Escape") close(); });
    document.body.appendChild(dialog);
  }

  launcher.addEventListener("click", function () {
    if (isOpen()) { close(); return; }
    if (!dialog) build(); else dialog.style.display = "flex";
    launcher.setAttribute("aria-expanded", "true");
    dialog.querySelector(".govfaq-close").focus();
  });
  // Esc pressed inside the chat (a page of another origin) arrives as a message from /embed.
  window.addEventListener("message", function (e) {
    if (e.origin === origin && e.data && e.data.govfaq === "close") close();
  });
  document.addEventListener("keydown", function (e) { if (e.key === "Escape" && isOpen()) close(); });

  function mount() { document.body.appendChild(launcher); }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();
