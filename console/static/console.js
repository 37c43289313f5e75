// The handoff case page, live: a long poll to this console shows what the guardian (and the
// agent) said since the page was drawn; the reply form posts without leaving the page.
// Without this script the page still works: the forms post, a reload shows what is new.
"use strict";

(function () {
  var live = document.getElementById("live");
  if (!live) { return; }
  var status = document.getElementById("live-status");
  var url = live.getAttribute("data-url");
  var after = parseInt(live.getAttribute("data-after"), 10) || 0;
  var WAIT_S = 20;
  var failures = 0;

  function say(text) { if (status) { status.textContent = text; } }

  function stop(why) {
    say(live.getAttribute("data-stopped").replace("{why}", why));
  }

  function show(message) {
    if (message.seq <= after) { return; }  // already drawn (the page, or an earlier poll)
    after = message.seq;
    var item = document.createElement("li");
    item.className = "from-" + message.from;
    item.setAttribute("data-seq", String(message.seq));
    var who = document.createElement("span");
    who.className = "who";
    who.textContent = live.getAttribute("data-label-" + message.from) || message.from;
    var time = document.createElement("time");
    time.textContent = message.time || "";
    var text = document.createElement("p");
    text.textContent = message.text;
    item.appendChild(who);
    item.appendChild(document.createTextNode(" "));
    item.appendChild(time);
    item.appendChild(text);
    live.appendChild(item);
    item.scrollIntoView({block: "nearest"});
  }

  function answerOf(response) {
    var type = response.headers.get("Content-Type") || "";
    if (type.indexOf("application/json") < 0) {  // the login page: the session ended
      return Promise.reject(new Error("session"));
    }
    return response.json().then(function (body) { return {status: response.status, body: body}; });
  }

  function poll() {
    fetch(url + "?after=" + after + "&wait=" + WAIT_S, {
      credentials: "same-origin", headers: {Accept: "application/json"}, cache: "no-store"
    }).then(answerOf).then(function (answer) {
      if (answer.status !== 200) {
        stop((answer.body.error && answer.body.error.message) || String(answer.status));
        return;
      }
      if (failures) { failures = 0; say(""); }
      answer.body.messages.forEach(show);
      after = Math.max(after, answer.body.next);
      if (answer.body.state !== "taken") {
        stop(answer.body.message || answer.body.state || "?");
        return;
      }
      poll();
    }).catch(function (error) {
      // Logged out meanwhile: a reload lands on the login page.
      if (error && error.message === "session") { window.location.reload(); return; }
      failures += 1;
      say(live.getAttribute("data-retrying"));
      setTimeout(poll, Math.min(30000, 1000 * failures));
    });
  }

  var form = document.getElementById("reply");
  if (form && window.URLSearchParams) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var field = form.querySelector("textarea");
      var button = form.querySelector("button");
      var body = new URLSearchParams();
      body.append("csrf", form.querySelector("input[name=csrf]").value);
      body.append("text", field.value);
      button.disabled = true;
      fetch(form.action, {
        method: "POST", credentials: "same-origin", body: body,
        headers: {Accept: "application/json"}
      }).then(answerOf).then(function (answer) {
        var ok = answer.status === 200;
        if (ok) { field.value = ""; }
        say(ok ? answer.body.message : (answer.body.error && answer.body.error.message) || "");
      }).catch(function () {
        say(live.getAttribute("data-retrying"));
      }).then(function () {
        button.disabled = false;
        field.focus();
      });
    });
  }

  poll();
}());
