(function () {
  "use strict";
  // The live console of the asyncws docs page. Data comes from the JSON island (parsed, never
  // evaluated); everything shown goes through textContent. Protocol: docs/protocol.md.
  var island = document.getElementById("asyncws-data");
  var data = JSON.parse(island ? island.textContent : "{}");
  var $ = function (id) { return document.getElementById(id); };
  var ops = data.operations || [];
  var topics = data.topics || [];
  var socket = null;
  var nextId = 1;
  var pending = new Map(); // id -> {kind, label, t0, entry}
  var subs = new Map(); // topic -> chip element
  var events = data.events || {};
  var paramValues = {}; // topic parameter name -> value: the Subscribe form, shared by topics
  var lastExample = ""; // the editor text as last filled in (to refresh it while untouched)

  function findOp(id) { return ops.find(function (op) { return op.id === id; }) || null; }
  function findTopic(key) { return topics.find(function (t) { return t.channel === key; }) || null; }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clock() {
    var d = new Date();
    var pad = function (n, w) { return String(n).padStart(w, "0"); };
    return pad(d.getHours(), 2) + ":" + pad(d.getMinutes(), 2) + ":" + pad(d.getSeconds(), 2) +
      "." + pad(d.getMilliseconds(), 3);
  }

  function elapsed(t0) {
    var ms = performance.now() - t0;
    return ms < 1 ? "<1 ms" : Math.round(ms) + " ms";
  }

  // -- connection -------------------------------------------------------------------------

  function wsUrl() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var host = $("c-host").value.trim();
    var path = $("c-path").value.trim();
    if (path && path.charAt(0) !== "/") path = "/" + path;
    var query = $("c-query").value.trim();
    if (query && query.charAt(0) !== "?") query = "?" + query;
    return scheme + host + path + query;
  }

  function showUrl() { $("c-url").textContent = wsUrl(); }

  function setStatus(text, kind) {
    var status = $("c-status");
    status.textContent = text;
    status.className = "status status-" + kind;
  }

  function connected() { return socket !== null && socket.readyState === WebSocket.OPEN; }

  function enable() {
    var on = connected();
    $("c-sub-btn").disabled = !on || topics.length === 0;
    $("c-unsub-btn").disabled = !on || topics.length === 0;
    $("c-send-btn").disabled = !on;
    $("c-connect-btn").textContent = socket === null ? "Connect" : "Disconnect";
  }

  function connect() {
    if (socket !== null) { socket.close(1000); return; }
    var hole = /\{([^}]*)\}/.exec($("c-path").value);
    if (hole) {
      note("fill in {" + hole[1] + "} in the path first", true);
      $("c-path").focus();
      return;
    }
    var url = wsUrl();
    var ws;
    try {
      ws = new WebSocket(url);
    } catch (err) {
      note("cannot connect to " + url + ": " + err.message, true);
      return;
    }
    socket = ws;
    setStatus("connecting…", "wait");
    note("connecting to " + url);
    enable();
    ws.addEventListener("open", function () {
      if (socket !== ws) return;
      setStatus("connected", "on");
      note("connected");
      enable();
    });
    ws.addEventListener("message", function (event) {
      if (socket === ws) received(event.data);
    });
    ws.addEventListener("close", function (event) {
      if (socket !== ws) return;
      socket = null;
      var why = "closed: code " + event.code + (event.reason ? " (" + event.reason + ")" : "");
      if (event.code === 1006) {
        why += " (refused or dropped: check the path and the query";
        var needed = (data.handshake || []).filter(function (h) { return h.required; });
        if (needed.length) {
          why += "; this endpoint needs " + needed.map(function (h) {
            return h.kind === "query" ? "?" + h.name + "=" : "the " + h.name + " header";
          }).join(", ");
        }
        why += ")";
      }
      setStatus("disconnected", event.code === 1000 || event.code === 1005 ? "off" : "err");
      note(why, event.code !== 1000 && event.code !== 1005);
      pending.clear();
      subs.forEach(function (chip) { chip.remove(); });
      subs.clear();
      enable();
    });
  }

  // -- the frame log ----------------------------------------------------------------------

  function entry(direction, frame, raw) {
    var item = el("li", "frame frame-" + direction);
    var meta = el("div", "frame-meta");
    meta.appendChild(el("span", "f-dir", direction === "out" ? "→ sent" : "← received"));
    meta.appendChild(el("span", "f-time", clock()));
    var type = frame && typeof frame.type === "string" ? frame.type : "(not JSON)";
    meta.appendChild(el("span", "f-type", type));
    if (frame && frame.id !== undefined && frame.id !== null && direction === "out") {
      meta.appendChild(el("span", "f-id", "#" + frame.id));
    }
    if (frame && typeof frame.topic === "string") meta.appendChild(el("span", "f-topic", frame.topic));
    if (direction !== "out" && frame && typeof frame.topic === "string" &&
        Object.prototype.hasOwnProperty.call(events, frame.type)) {
      var link = el("a", "f-doc", "docs");
      link.href = "#" + events[frame.type];
      meta.appendChild(link);
    }
    var corr = el("span", "f-corr");
    meta.appendChild(corr);
    item.appendChild(meta);
    var body = frame ? JSON.stringify(frame, null, 2) : String(raw);
    item.appendChild(el("pre", "json", body));
    var log = $("c-log");
    var stick = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.appendChild(item);
    if (stick) log.scrollTop = log.scrollHeight;
    return { item: item, corr: corr };
  }

  function note(text, bad) {
    var item = el("li", "frame frame-note" + (bad ? " frame-error" : ""));
    var meta = el("div", "frame-meta");
    meta.appendChild(el("span", "f-time", clock()));
    meta.appendChild(el("span", "", text));
    item.appendChild(meta);
    var log = $("c-log");
    log.appendChild(item);
    log.scrollTop = log.scrollHeight;
  }

  function send(frame, label) {
    if (!connected()) { note("not connected", true); return false; }
    if (frame.id === undefined || frame.id === null) frame.id = nextId;
    if (typeof frame.id === "number" && frame.id >= nextId) nextId = frame.id + 1;
    var text = JSON.stringify(frame);
    socket.send(text);
    var shown = entry("out", frame, text);
    pending.set(frame.id, { label: label || frame.type, t0: performance.now(), entry: shown });
    return true;
  }

  function received(text) {
    var frame = null;
    try {
      frame = JSON.parse(text);
    } catch (err) {
      frame = null;
    }
    if (frame === null || typeof frame !== "object" || Array.isArray(frame)) {
      entry("in", null, text);
      return;
    }
    var shown = entry(frame.type === "error" ? "in frame-error" : "in", frame, text);
    var answer = frame.type === "ack" || frame.type === "reply" || frame.type === "error";
    if (answer && frame.id !== undefined && frame.id !== null && pending.has(frame.id)) {
      var request = pending.get(frame.id);
      pending.delete(frame.id);
      var took = elapsed(request.t0);
      shown.corr.textContent = frame.type + " to #" + frame.id + " (" + request.label + ") in " + took;
      var outcome = frame.type === "error" ? "✗ error " + (frame.code || "") : "✓ " + frame.type;
      request.entry.corr.textContent = outcome + " in " + took;
      settleSubscription(request, frame);
    } else if (frame.type === "error") {
      shown.corr.textContent = "error " + (frame.code || "");
    } else if (typeof frame.topic === "string") {
      shown.corr.textContent = "event on " + frame.topic;
      notePosition(frame.topic, frame.offset, frame.epoch);
    }
  }

  // -- subscriptions ----------------------------------------------------------------------

  function currentTopic() {
    var topic = findTopic($("c-topic").value);
    if (topic === null) return { text: "", error: "no topic" };
    var text = topic.address;
    var error = "";
    topic.params.forEach(function (param) {
      var input = $("c-param-" + param.name);
      var value = input ? input.value.trim() : "";
      if (!value) error = "fill in {" + param.name + "}";
      else if (value.indexOf("/") >= 0) error = "{" + param.name + "} is one level: no '/'";
      text = text.split("{" + param.name + "}").join(value);
    });
    return { text: text, error: error };
  }

  function showTopic() {
    var topic = currentTopic();
    $("c-topic-preview").textContent = topic.error ? topic.text + "  (" + topic.error + ")" : topic.text;
  }

  function renderParams() {
    var box = $("c-params");
    box.replaceChildren();
    var topic = findTopic($("c-topic").value);
    if (!topic) return;
    topic.params.forEach(function (param) {
      var label = el("label", "c-field");
      label.appendChild(el("span", "", "{" + param.name + "}"));
      var input;
      if (param.enum && param.enum.length) {
        input = el("select");
        param.enum.forEach(function (value) {
          var option = el("option", "", value);
          option.value = value;
          input.appendChild(option);
        });
        ["+", "#"].forEach(function (value) {
          var option = el("option", "", value + " (wildcard)");
          option.value = value;
          input.appendChild(option);
        });
      } else {
        input = el("input");
        input.spellcheck = false;
        input.placeholder = param.description || param.name;
      }
      input.id = "c-param-" + param.name;
      input.value = paramValues[param.name] || "";
      if (param.description) label.title = param.description;
      var changed = function () {
        paramValues[param.name] = input.value.trim();
        showTopic();
        if ($("c-editor").value === lastExample) resetEditor();
      };
      input.addEventListener("input", changed);
      input.addEventListener("change", changed);
      label.appendChild(input);
      box.appendChild(label);
    });
    showTopic();
  }

  // The last position seen per concrete topic of a history topic (events carry offset and
  // epoch; a subscribe's ack carries the current position): "since" on the next subscribe.
  var positions = new Map();

  function notePosition(topic, offset, epoch) {
    if (typeof topic === "string" && typeof offset === "number" && typeof epoch === "string") {
      positions.set(topic, { offset: offset, epoch: epoch });
    }
  }

  function subscribe(kind) {
    var topic = currentTopic();
    if (topic.error) { note(topic.error, true); return; }
    if (kind === "subscribe" && !subs.has(topic.text)) {
      var chip = el("span", "c-sub pending");
      chip.appendChild(el("span", "", topic.text));
      var close = el("button", "", "×");
      close.type = "button";
      close.title = "Unsubscribe";
      close.setAttribute("aria-label", "Unsubscribe from " + topic.text);
      close.addEventListener("click", function () {
        send({ type: "unsubscribe", topic: topic.text, id: nextId }, "unsubscribe " + topic.text);
      });
      chip.appendChild(close);
      $("c-subs").appendChild(chip);
      subs.set(topic.text, chip);
    }
    var frame = { type: kind, topic: topic.text, id: nextId };
    var since = $("c-since");
    if (kind === "subscribe" && since && since.checked && positions.has(topic.text)) {
      frame.since = positions.get(topic.text);
    }
    send(frame, kind + " " + topic.text);
  }

  function settleSubscription(request, frame) {
    var match = /^(subscribe|unsubscribe) (.*)$/.exec(request.label);
    if (!match) return;
    var chip = subs.get(match[2]);
    if (!chip) return;
    if (match[1] === "subscribe" && frame.type !== "error") {
      chip.className = "c-sub active";
      var at = frame.position;
      if (at && typeof at === "object" && frame.recovered !== true) {
        notePosition(match[2], at.offset, at.epoch);
      }
    } else if (match[1] === "unsubscribe" && frame.type !== "error") {
      chip.remove();
      subs.delete(match[2]);
    } else if (match[1] === "subscribe") {
      chip.remove();
      subs.delete(match[2]);
    }
  }

  // -- the editor -------------------------------------------------------------------------

  function exampleFor(id) {
    var op = findOp(id);
    if (!op) return "";
    var frame = JSON.parse(op.frame);
    frame.id = nextId;
    // Fields named like a topic parameter take its value from the Subscribe form, so that
    // e.g. a post goes to the room just subscribed to.
    var payload = frame.data;
    if (payload !== null && typeof payload === "object" && !Array.isArray(payload)) {
      Object.keys(payload).forEach(function (key) {
        var value = Object.prototype.hasOwnProperty.call(paramValues, key) ? paramValues[key] : "";
        if (typeof payload[key] === "string" && value && value !== "+" && value !== "#") {
          payload[key] = value;
        }
      });
    }
    return JSON.stringify(frame, null, 2);
  }

  function resetEditor() {
    lastExample = exampleFor($("c-op").value);
    $("c-editor").value = lastExample;
    $("c-editor-error").textContent = "";
  }

  function sendEditor() {
    var text = $("c-editor").value;
    var frame;
    try {
      frame = JSON.parse(text);
    } catch (err) {
      $("c-editor-error").textContent = "not valid JSON: " + err.message;
      return;
    }
    if (frame === null || typeof frame !== "object" || Array.isArray(frame)) {
      $("c-editor-error").textContent = "a frame is a JSON object";
      return;
    }
    if (typeof frame.type !== "string" || !frame.type) {
      $("c-editor-error").textContent = "a frame needs a \"type\"";
      return;
    }
    $("c-editor-error").textContent = "";
    if (send(frame, frame.type)) {
      var next = {};
      Object.keys(frame).forEach(function (key) { next[key] = key === "id" ? nextId : frame[key]; });
      $("c-editor").value = JSON.stringify(next, null, 2);
      lastExample = "";
    }
  }

  // -- wiring -----------------------------------------------------------------------------

  function init() {
    $("c-host").value = location.host || hostFromServers();
    $("c-path").value = data.path || "";
    $("c-query").value = location.search || data.query || "";
    ["c-host", "c-path", "c-query"].forEach(function (id) { $(id).addEventListener("input", showUrl); });
    showUrl();

    topics.forEach(function (topic) {
      topic.params.forEach(function (param) {
        if (!Object.prototype.hasOwnProperty.call(paramValues, param.name)) {
          paramValues[param.name] = param.value || "";
        }
      });
      var option = el("option", "", topic.address);
      option.value = topic.channel;
      $("c-topic").appendChild(option);
    });
    if (!topics.length) $("c-topic").appendChild(el("option", "", "(no topics)"));
    $("c-topic").addEventListener("change", renderParams);
    renderParams();

    ops.forEach(function (op) {
      var option = el("option", "", op.id + (op.type !== op.id ? "  (type " + op.type + ")" : "") +
        "  · " + op.badge);
      option.value = op.id;
      $("c-op").appendChild(option);
    });
    if (!ops.length) $("c-op").appendChild(el("option", "", "(no operations)"));
    $("c-op").addEventListener("change", resetEditor);
    resetEditor();

    $("c-connect").addEventListener("submit", function (event) { event.preventDefault(); connect(); });
    $("c-subscribe").addEventListener("submit", function (event) {
      event.preventDefault();
      subscribe("subscribe");
    });
    $("c-unsub-btn").addEventListener("click", function () { subscribe("unsubscribe"); });
    $("c-send").addEventListener("submit", function (event) { event.preventDefault(); sendEditor(); });
    $("c-editor").addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        sendEditor();
      }
    });
    $("c-reset-btn").addEventListener("click", resetEditor);
    $("c-clear").addEventListener("click", function () { $("c-log").replaceChildren(); });

    document.querySelectorAll("button.try").forEach(function (button) {
      button.addEventListener("click", function () {
        var op = button.getAttribute("data-op");
        var topic = button.getAttribute("data-topic");
        if (op !== null) {
          if (findOp(op) !== null) { $("c-op").value = op; resetEditor(); }
          $("console").scrollIntoView();
          $("c-editor").focus({ preventScroll: true });
        } else if (topic !== null) {
          if (findTopic(topic) !== null) { $("c-topic").value = topic; renderParams(); }
          $("console").scrollIntoView();
        }
      });
    });
    enable();
  }

  function hostFromServers() {
    var url = (data.servers || [])[0] || "";
    var match = /^[a-z]+:\/\/([^/]+)/.exec(url);
    return match ? match[1] : "";
  }

  init();
})();
