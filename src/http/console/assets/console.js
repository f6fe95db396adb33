// hookgate console: copy buttons and live tails. Every page works without this script; it only
// adds the two conveniences.
(function () {
  "use strict";

  function copied(button, text) {
    button.textContent = text;
    window.setTimeout(function () { button.textContent = "Copy"; }, 1500);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-copy]");
    if (!button) { return; }
    var input = document.getElementById(button.getAttribute("data-copy"));
    if (!input) { return; }
    input.focus();
    input.select();
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(
        function () { copied(button, "Copied"); },
        function () { copied(button, document.execCommand("copy") ? "Copied" : "Press Ctrl+C"); }
      );
    } else {
      copied(button, document.execCommand("copy") ? "Copied" : "Press Ctrl+C");
    }
  });

  // A live tail: polls its URL with the newest row's id and puts new rows on top.
  function tail(box) {
    var rows = document.getElementById(box.getAttribute("data-target"));
    var toggle = box.querySelector("input[type=checkbox]");
    var status = box.querySelector("[role=status]");
    var url = box.getAttribute("data-tail");
    var fresh = 0;
    if (!rows) { return; }

    function schedule() { window.setTimeout(poll, 2000); }

    function newest() {
      var first = rows.querySelector("tr[data-id]");
      return first ? first.getAttribute("data-id") : (box.getAttribute("data-after") || "");
    }

    function poll() {
      if (toggle && !toggle.checked) { schedule(); return; }
      var sep = url.indexOf("?") < 0 ? "?" : "&";
      var after = newest();
      var target = after ? url + sep + "after=" + encodeURIComponent(after) : url;
      fetch(target, { credentials: "same-origin", redirect: "manual" })
        .then(function (response) {
          if (response.status === 401 || response.type === "opaqueredirect") {
            status.textContent = "Signed out: the live view stopped.";
            return null;
          }
          return response.ok ? response.text() : "";
        })
        .then(function (html) {
          if (html === null) { return; }
          if (html.trim()) {
            var template = document.createElement("template");
            template.innerHTML = html;
            var incoming = template.content.querySelectorAll("tr[data-id]");
            var fragment = document.createDocumentFragment();
            incoming.forEach(function (row) {
              var id = row.getAttribute("data-id");
              if (!rows.querySelector('tr[data-id="' + CSS.escape(id) + '"]')) {
                row.classList.add("new");
                fragment.appendChild(row);
                fresh += 1;
              }
            });
            if (fragment.childNodes.length) {
              rows.insertBefore(fragment, rows.firstChild);
              var none = document.querySelector("[data-empty]");
              if (none) { none.remove(); }
              status.textContent = fresh + " new since the page loaded.";
            }
          }
          schedule();
        })
        .catch(function () { schedule(); });
    }

    schedule();
  }

  document.querySelectorAll("[data-tail]").forEach(tail);
})();
