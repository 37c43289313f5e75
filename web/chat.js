// Starts the rasa-webchat widget against the Rasa server that served this page.
(function () {
  var lang = /^zh/i.test(navigator.language || "") ? "zh" : "en";
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-" + lang + "]").forEach(function (el) {
    el.textContent = el.getAttribute("data-" + lang);
  });
  var phone = window.matchMedia("(max-width: 600px)").matches;
  var zh = lang === "zh";
  WebChat.default({
    selector: "#chat",
    // The language rides on the first payload, so the greeting comes in it.
    initPayload: '/greet{"language": "' + lang + '"}',
    customData: { language: lang },
    socketUrl: window.location.origin,
    socketPath: "/socket.io/",
    title: zh ? "社保卡挂失助手" : "Card assistant",
    subtitle: zh ? "自动助手 · 人工请拨 12333" : "Automated · call 12333 for a person",
    inputTextFieldHint: zh ? "请输入…" : "Type a message…",
    embedded: phone,
    showFullScreenButton: !phone,
    params: { storage: "local" }
  }, null);
})();
