// The 窓口持参メモ's print button (hidden without JavaScript: the browser's own print works there).
(function () {
  "use strict";
  var b = document.getElementById("print-button");
  if (b) { b.hidden = false; b.addEventListener("click", function () { window.print(); }); }
})();
