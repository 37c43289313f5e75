// Starts the rasa-webchat widget against the Rasa server that served this page.
// Loaded in the head: the first part runs before the page is drawn, `start` once it is parsed.
(function () {
  "use strict";
  var root = document.documentElement;
  var lang = /^zh/i.test(navigator.language || "") ? "zh" : "en";
  var zh = lang === "zh";
  root.lang = zh ? "zh-CN" : "en";

  // Larger text, for guardians who find small print hard to read. The choice stays on this
  // device, apart from the conversation (so "clear chat" keeps it), and is applied here,
  // before the first paint, so the page never shows small text first.
  var TEXT_SIZE = "chat_text_size";
  function largeTextChosen() {
    try { return window.localStorage.getItem(TEXT_SIZE) === "large"; } catch (error) { return false; }
  }
  function chooseLargeText(large) {
    root.classList.toggle("large-text", large);
    try {
      if (large) { window.localStorage.setItem(TEXT_SIZE, "large"); }
      else { window.localStorage.removeItem(TEXT_SIZE); }
    } catch (error) { /* storage refused (private mode): the choice lasts while the page is open */ }
  }
  root.classList.toggle("large-text", largeTextChosen());

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

  // What the widget leaves out for screen readers and keyboards, added to what it renders:
  // names for its icon buttons and its text field in the page's language, quick replies that
  // are buttons (it draws them as plain clickable boxes), and a message list that is a
  // focusable live log, so new replies are read out and a long history can be scrolled
  // from the keyboard.
  var NAMES = {
    ".rw-send": zh ? "发送" : "Send",
    ".rw-new-message": zh ? "输入消息" : "Your message",
    ".rw-launcher": zh ? "打开或关闭对话" : "Open or close the chat",
    ".rw-close-button": zh ? "关闭对话" : "Close the chat",
    ".rw-toggle-fullscreen-button": zh ? "全屏" : "Full screen",
    ".rw-messages-container": zh ? "对话" : "Conversation"
  };
  var CJK = /[\u3400-\u9fff\uf900-\ufaff]/;
  function mendWidget(widget) {
    Object.keys(NAMES).forEach(function (selector) {
      widget.querySelectorAll(selector).forEach(function (el) {
        if (el.getAttribute("aria-label") !== NAMES[selector]) {
          el.setAttribute("aria-label", NAMES[selector]);
        }
      });
    });
    widget.querySelectorAll("div.rw-reply:not([role])").forEach(function (reply) {
      reply.setAttribute("role", "button");
      reply.tabIndex = 0;
    });
    // Its title is an h4 under the page's h1: the next level down for assistive technology.
    widget.querySelectorAll("h4.rw-title:not([aria-level])").forEach(function (heading) {
      heading.setAttribute("aria-level", "2");
    });
    widget.querySelectorAll(".rw-messages-container:not([role])").forEach(function (list) {
      list.setAttribute("role", "log");
      list.tabIndex = 0;
    });
    // The bot answers in the language typed, not always the page's: each message says its
    // own, so a screen reader reads Chinese as Chinese on an English page and the reverse.
    widget.querySelectorAll(".rw-response:not([lang]), .rw-client:not([lang])")
      .forEach(function (message) {
        if (message.textContent) { message.lang = CJK.test(message.textContent) ? "zh-CN" : "en"; }
      });
  }
  // Enter or Space on a quick reply chooses it, as they would on a real button.
  document.addEventListener("keydown", function (event) {
    var reply = event.target.closest && event.target.closest("#chat div.rw-reply[role=button]");
    if (reply && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      reply.click();
    }
  });

  document.addEventListener("DOMContentLoaded", start);

  function start() {
    document.querySelectorAll("[data-" + lang + "]").forEach(function (el) {
      el.textContent = el.getAttribute("data-" + lang);
    });
    // Phones get the whole screen; a desktop page keeps its floating widget.
    var phone = window.matchMedia("(max-width: 600px)").matches;
    document.body.classList.add(phone ? "phone" : "desktop");

    var textSize = document.getElementById("text-size");
    textSize.setAttribute("aria-pressed", String(largeTextChosen()));
    textSize.addEventListener("click", function () {
      var large = textSize.getAttribute("aria-pressed") !== "true";
      chooseLargeText(large);
      textSize.setAttribute("aria-pressed", String(large));
    });

    document.getElementById("clear-chat").addEventListener("click", function () {
      var question = zh ? "清除本机上的对话记录？" : "Clear this conversation from this device?";
      if (window.confirm(question)) {
        window.localStorage.removeItem("chat_session");
        window.location.reload();
      }
    });

    var widget = document.getElementById("chat");
    // Attribute changes are not watched, so mending never wakes the observer again.
    new MutationObserver(function () { mendWidget(widget); })
      .observe(widget, { childList: true, subtree: true });
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
    }, widget);
  }
})();
