/* clickpipe tag. Served by the collector at /tag.js with its configuration filled in.
   API: clickpipe.signal(type, params) -> event id; clickpipe.optOut(); clickpipe.optIn(); clickpipe.flush();
   clickpipe.consent("granted" | "denied") records the visitor's consent with every later event.
   Every event carries the page view's interaction evidence so far (counts of trusted pointer,
   touch, key and scroll events; time visible and focused; whether it was ever visible).
   Calls queued before it loads, as [method, args...] in clickpipe.q (the async snippet), run once it has. */
(function (w, d, n, C) {
  "use strict";
  if (w.clickpipe && w.clickpipe.v) return;
  var me = d.currentScript;
  var base = C.endpoint || (me ? new URL(me.src).origin : "");
  var queue = [], timer = 0, busy = false, backoff = 1000, leaving = false;
  var pageViewId = null, lastPage = null, referrer = d.referrer || null;
  var act, sent, since, vis, foc, lastScroll = 0;
  function isConsent(v) { return v === "granted" || v === "denied"; }

  function rid() {
    var b = w.crypto.getRandomValues(new Uint8Array(16)), s = "";
    for (var i = 0; i < 16; i++) s += String.fromCharCode(b[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function getCookie(name) {
    var m = d.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return m ? decodeURIComponent(m[1]) : null;
  }
  function setCookie(name, value, seconds) {
    d.cookie = name + "=" + encodeURIComponent(value) + "; path=/; max-age=" + seconds +
      (C.cookieDomain ? "; domain=" + C.cookieDomain : "") + "; SameSite=Lax" +
      (location.protocol === "https:" ? "; Secure" : "");
  }
  function blocked() {
    return getCookie(C.optOutCookie) === "1" ||
      (C.honorDnt && (n.doNotTrack === "1" || w.doNotTrack === "1")) ||
      (C.honorGpc && n.globalPrivacyControl === true);
  }
  // The session lives in a cookie holding "<id>.<last activity, base 36>" and is read on
  // every event, so an idle page starts a new session once the timeout has passed.
  function session(now) {
    var parts = (getCookie(C.sessionCookie) || "").split("."), id = parts[0];
    if (!id || !(now - parseInt(parts[1], 36) < C.sessionTimeout * 1000)) id = rid();
    setCookie(C.sessionCookie, id + "." + now.toString(36), C.sessionTimeout);
    return id;
  }

  // Interaction evidence of the current page view. Only trusted events count: a script can
  // dispatch events, but they arrive with isTrusted false. Times accumulate by the state since
  // the last change of visibility or focus, so a page in a background tab gains no visible time.
  function shown() { return d.visibilityState === "visible"; }
  function resetAct() {
    act = { pointer: 0, touch: 0, keys: 0, scrolls: 0, visible_ms: 0, focused_ms: 0, ever_visible: shown() };
    since = Date.now(); vis = shown(); foc = vis && d.hasFocus(); sent = [0, 0];
  }
  function tick() {
    var now = Date.now(), dt = now - since;
    if (vis) act.visible_ms += dt;
    if (foc) act.focused_ms += dt;
    since = now; vis = shown(); foc = vis && d.hasFocus();
    if (vis) act.ever_visible = true;
  }
  function evidence() {
    tick();
    var o = {};
    for (var k in act) o[k] = act[k];
    return o;
  }
  function count(type, key) {
    w.addEventListener(type, function (e) {
      if (!e.isTrusted) return;
      if (key === "scrolls") {
        if (e.timeStamp - lastScroll < 100) return;
        lastScroll = e.timeStamp;
      }
      act[key]++;
    }, { capture: true, passive: true });
  }
  count(w.PointerEvent ? "pointerdown" : "mousedown", "pointer");
  count("touchstart", "touch");
  count("keydown", "keys");
  count("scroll", "scrolls");
  ["visibilitychange", "focus", "blur"].forEach(function (t) { w.addEventListener(t, tick, true); });
  // A page view that ends with interaction, or at least half a second of visible time, that
  // its last event did not report says so in a last "engagement" event.
  function engagement() {
    tick();
    if (pageViewId && (act.pointer + act.touch + act.keys + act.scrolls !== sent[0] || act.visible_ms - sent[1] >= 500)) {
      signal("engagement");
    }
  }

  function signal(type, params) {
    if (blocked()) return null;
    var now = Date.now(), ev = {
      event_type: String(type), event_id: rid(), session_id: session(now), page_view_id: pageViewId,
      client_time: now, location: location.href, referrer: referrer,
      screen_width: screen.width, screen_height: screen.height,
      viewport_width: w.innerWidth, viewport_height: w.innerHeight,
      device_pixel_ratio: w.devicePixelRatio, webdriver: !!n.webdriver, interaction: evidence(),
      params: params || {}
    };
    sent = [act.pointer + act.touch + act.keys + act.scrolls, act.visible_ms];
    var consent = getCookie(C.consentCookie);
    if (isConsent(consent)) ev.consent = consent;
    queue.push(ev);
    if (leaving || d.visibilityState === "hidden") flush(true);
    else if (queue.length >= C.batchMax) flush();
    else if (!timer) timer = setTimeout(flush, C.flushMs);
    return ev.event_id;
  }

  function pixel(ev) {
    var q = "via=tag";
    for (var k in ev) {
      if (k === "params") for (var p in ev.params) q += "&params." + encodeURIComponent(p) + "=" + encodeURIComponent(ev.params[p]);
      else if (ev[k] !== null) q += "&" + k + "=" + encodeURIComponent(typeof ev[k] === "object" ? JSON.stringify(ev[k]) : ev[k]);
    }
    new Image().src = base + "/p.gif?" + q;
  }

  function retry(batch, seconds) {
    queue = batch.concat(queue);
    timer = setTimeout(flush, seconds ? seconds * 1000 : backoff);
    backoff = Math.min(backoff * 2, 60000);
  }

  // Normal sends: fetch, one request in flight, retried with backoff on 5xx or network
  // failure. When the page is being hidden or unloaded: everything at once with
  // keepalive (the browser finishes it after unload), else sendBeacon, else pixels.
  function flush(unloading) {
    clearTimeout(timer); timer = 0;
    if (!queue.length || (busy && !unloading)) return;
    var url = base + "/events?via=tag";
    while (queue.length) {
      var batch = queue.splice(0, C.batchMax), body = JSON.stringify(batch);
      if (unloading) {
        try {
          fetch(url, { method: "POST", body: body, keepalive: true, credentials: "include", headers: { "Content-Type": "application/json" } });
        } catch (e) {
          if (!(n.sendBeacon && n.sendBeacon(url, new Blob([body], { type: "application/json" })))) batch.forEach(pixel);
        }
        continue;
      }
      if (!w.fetch) { batch.forEach(pixel); continue; }
      busy = true;
      fetch(url, { method: "POST", body: body, credentials: "include", headers: { "Content-Type": "application/json" } })
        .then(function (r) {
          busy = false;
          if (r.status >= 500) retry(this, r.headers.get("Retry-After"));
          else { backoff = 1000; if (queue.length) flush(); }
        }.bind(batch), function () { busy = false; retry(this); }.bind(batch));
      return;
    }
  }

  // A single-page app's navigation is a new page view whose referrer is the previous page.
  function pageView() {
    if (location.href === lastPage) return;
    if (lastPage) referrer = lastPage;
    engagement();
    lastPage = location.href;
    pageViewId = rid();
    resetAct();
    signal("pageView");
  }
  // Count a page view only once the page is actually shown (not prerendered or opened in
  // a background tab), and again when it comes back from the back/forward cache.
  function whenVisible(f) {
    if (d.visibilityState === "visible") return f();
    d.addEventListener("visibilitychange", function once() {
      if (d.visibilityState === "visible") { d.removeEventListener("visibilitychange", once); f(); }
    });
  }
  var push = history.pushState;
  history.pushState = function () { var r = push.apply(this, arguments); pageView(); return r; };
  w.addEventListener("popstate", pageView);
  w.addEventListener("pageshow", function (e) {
    leaving = false;
    if (e.persisted) { lastPage = null; whenVisible(pageView); }
  });
  // A page in the back/forward cache is not visible: it gains no time there.
  w.addEventListener("pagehide", function () { leaving = true; engagement(); vis = foc = false; flush(true); });
  d.addEventListener("visibilitychange", function () { if (d.visibilityState === "hidden") flush(true); });

  resetAct();
  var early = (w.clickpipe && w.clickpipe.q) || [];
  w.clickpipe = {
    v: 1, signal: signal, flush: function () { flush(); },
    optOut: function () { queue = []; setCookie(C.optOutCookie, "1", 63072000); },
    optIn: function () { setCookie(C.optOutCookie, "", 0); },
    consent: function (state) { if (isConsent(state)) setCookie(C.consentCookie, state, 31536000); }
  };
  whenVisible(pageView);
  for (var i = 0; i < early.length; i++) {
    var f = w.clickpipe[early[i][0]];
    if (typeof f === "function") f.apply(null, [].slice.call(early[i], 1));
  }
})(window, document, navigator, __CONFIG__);
