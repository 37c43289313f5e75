// Starts the rasa-webchat widget against the Rasa server that served this page.
(function () {
  "use strict";
  var lang = /^zh/i.test(navigator.language || "") ? "zh" : "en";
  var zh = lang === "zh";
  document.documentElement.lang = zh ? "zh-CN" : "en";
  document.querySelectorAll("[data-" + lang + "]").forEach(function (el) {
    el.textContent = el.getAttribute("data-" + lang);
  });
  // Phones get the whole screen; a desktop page keeps its floating widget.
  var phone = window.matchMedia("(max-width: 600px)").matches;
  document.body.classList.add(phone ? "phone" : "desktop");

  // The widget keeps the conversation in localStorage (history across reloads). What it keeps
  // has every ID and mobile number masked as the replies show them (1101**********3329):
  // whole numbers are seen only in the moment they are typed. On a shared phone the guardian
  // can wipe the history.
  var NUMBER = /[0-9\uFF10-\uFF19](?:[ \-]?[0-9\uFF10-\uFF19]){9,16}(?:[ \-]?[0-9Xx\uFF10-\uFF19\uFF38\uFF58])/g;
  function masked(text) {
    return text.replace(NUMBER, function (typed) {
      var digits = typed.normalize("NFKC").replace(/[ \-]/g, "");
      if (digits.length < 11) { return typed; }
      var keep = Math.min(4, Math.floor(digits.length / 4));
      return digits.slice(0, keep) + "*".repeat(digits.length - 2 * keep) +
        digits.slice(digits.length - keep);
    });
  }
  // Only the texts: numbers such as timestamps and the session id stay as they are.
  function maskedTexts(value, key) {
    if (typeof value === "string") { return /session/i.test(key || "") ? value : masked(value); }
    if (Array.isArray(value)) { return value.map(function (item) { return maskedTexts(item); }); }
    if (value && typeof value === "object") {
      var copy = {};
      Object.keys(value).forEach(function (name) { copy[name] = maskedTexts(value[name], name); });
      return copy;
    }
    return value;
  }
  var setItem = Storage.prototype.setItem;
  Storage.prototype.setItem = function (key, value) {
    if (key === "chat_session") {
      try { value = JSON.stringify(maskedTexts(JSON.parse(value))); } catch (error) { value = "{}"; }
    }
    return setItem.call(this, key, value);
  };

  document.getElementById("clear-chat").addEventListener("click", function () {
    var question = zh ? "清除本机上的对话记录？" : "Clear this conversation from this device?";
    if (window.confirm(question)) {
      window.localStorage.removeItem("chat_session");
      window.location.reload();
    }
  });

  // Links in messages open only web, mail and phone addresses: a `javascript:` link in a
  // message must never run (the page's CSP blocks it as well).
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("#chat a[href]");
    if (link && !/^(https?:|mailto:|tel:)/i.test(link.href)) {
      event.preventDefault();
      event.stopPropagation();
    }
  }, true);

  // When the keyboard opens the page gets shorter: keep the latest message in view.
  window.addEventListener("resize", function () {
    var list = document.querySelector("#chat .rw-messages-container");
    if (list) { list.scrollTop = list.scrollHeight; }
  });

  // A notice (the card service's "card ready") comes as a bot message whose metadata names
  // it. The page acknowledges every message the server asks it to (notices are asked), so
  // the server knows it was shown here rather than sent into the void. One that waited for
  // the page while it was closed (`unread`), or that arrives while the guardian is not
  // looking, marks the title until they are: the tab shows it from the tab bar.
  var title = document.title;
  var unread = {};
  function showUnread() {
    var count = Object.keys(unread).length;
    document.title = count ? (zh ? "（" + count + " 条未读）" : "(" + count + " unread) ") + title
      : title;
  }
  function looked() {
    if (Object.keys(unread).length) {
      unread = {};
      showUnread();
    }
  }
  function botUttered(message, acknowledge) {
    if (typeof acknowledge === "function") { acknowledge(); }
    var about = (message && message.metadata) || {};
    if (about.notice && (about.unread || document.hidden || !document.hasFocus())) {
      unread[about.notice] = true;
      showUnread();
    }
  }
  window.addEventListener("focus", looked);
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) { looked(); }
  });
  ["pointerdown", "keydown"].forEach(function (name) {
    document.addEventListener(name, looked, true);
  });

  WebChat.default({
    // The language rides on the first payload, so the greeting comes in it; later
    // messages carry it as metadata and the bot follows the language actually typed.
    initPayload: '/greet{"language": "' + lang + '"}',
    customData: { language: lang },
    socketUrl: window.location.origin,
    socketPath: "/socket.io/",
    title: zh ? "社保卡挂失助手" : "Card assistant",
    subtitle: zh ? "自动助手 · 人工请拨 12333" : "Automated · call 12333 for a person",
    inputTextFieldHint: zh ? "请输入…" : "Type a message…",
    connectingText: zh ? "正在连接…" : "Connecting…",
    hideWhenNotConnected: false,
    embedded: phone,
    showFullScreenButton: !phone,
    // A short pause reads as a reply; the widget's default waits up to 3 s per message.
    customMessageDelay: function () { return 300; },
    onSocketEvent: { bot_uttered: botUttered },
    params: { storage: "local" }
  }, document.getElementById("chat"));
})();
