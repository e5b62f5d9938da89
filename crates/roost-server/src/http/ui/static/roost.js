// Roost console: live updates. The pages work without this script; with
// it, the parts marked data-fragment are fetched again when the server's
// event stream (/ui/stream) says that what they show changed.
(function () {
  "use strict";
  function refresh(name) {
    var parts = document.querySelectorAll('[data-fragment="' + name + '"]');
    if (parts.length === 0) { return; }
    var url = "/ui/fragment/" + name + window.location.search;
    fetch(url, { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) { throw new Error(r.status); }
      return r.text();
    }).then(function (html) {
      var holder = document.createElement("div");
      holder.innerHTML = html;
      var fresh = holder.querySelector('[data-fragment="' + name + '"]');
      if (!fresh) { return; }
      parts.forEach(function (old) { old.replaceWith(fresh.cloneNode(true)); });
    }).catch(function () { /* the next change tries again */ });
  }
  if (!window.EventSource) { return; }
  var source = new EventSource("/ui/stream");
  source.addEventListener("change", function (e) {
    if (e.data === "alarms") { refresh("banner"); refresh("alarms"); }
    if (e.data === "strategy") { refresh("strategy"); }
  });
  document.documentElement.setAttribute("data-live", "1");
})();
