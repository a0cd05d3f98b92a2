// Refreshes the page's content without a reload: every data-refresh
// seconds the same URL is fetched with X-Fragment: 1 (the server then
// renders only <main>'s content), and a live log tail (data-tail) every
// two seconds. Refreshing pauses while a form field has focus.
(function () {
  "use strict";
  function busy() {
    var a = document.activeElement;
    return a && (a.tagName === "INPUT" || a.tagName === "TEXTAREA" || a.tagName === "SELECT");
  }
  function keepScroll(el, text) {
    var atEnd = el.scrollTop + el.clientHeight >= el.scrollHeight - 4;
    if (el.textContent !== text) { el.textContent = text; }
    if (atEnd) { el.scrollTop = el.scrollHeight; }
  }
  function tail() {
    var pre = document.getElementById("logs");
    if (!pre || !pre.dataset.tail) { return; }
    fetch(pre.dataset.tail, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (t) { if (t !== null) { keepScroll(pre, t); } })
      .catch(function () {});
  }
  function refresh() {
    var main = document.getElementById("main");
    if (!main || busy()) { return; }
    fetch(location.href, { credentials: "same-origin", cache: "no-store", headers: { "X-Fragment": "1" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) { return; }
        var old = document.getElementById("logs");
        var oldScroll = old ? old.scrollTop : 0;
        main.innerHTML = html;
        var pre = document.getElementById("logs");
        if (pre) { pre.scrollTop = oldScroll || pre.scrollHeight; }
      })
      .catch(function () {});
  }
  document.addEventListener("DOMContentLoaded", function () {
    var main = document.getElementById("main");
    var secs = main ? parseInt(main.dataset.refresh || "0", 10) : 0;
    if (secs > 0) { setInterval(refresh, secs * 1000); }
    var pre = document.getElementById("logs");
    if (pre) { pre.scrollTop = pre.scrollHeight; }
    setInterval(tail, 2000);
  });
})();
