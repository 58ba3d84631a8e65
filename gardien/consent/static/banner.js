/*! Gardien cookie banner. Embed with one tag:
 *  <script src="https://gardien.example/consent/banner.js" data-site-key="gdn_site_…" defer></script>
 * Optional: data-locale="fr|nl|en|de". Page API: window.Gardien.consent.open(), .get(purpose), .onChange(cb).
 * Blocked until granted: <script type="text/plain" data-purpose="analytics" [src]>, <iframe data-purpose data-src>.
 */
(() => {
  "use strict";
  const script =
    document.currentScript || document.querySelector('script[data-site-key][src*="/consent/banner.js"]');
  if (!script || (window.Gardien && window.Gardien.consent)) return;

  const COOKIE = "gardien_consent";
  const PENDING = "gardien_consent_pending";
  const LOCALES = ["fr", "nl", "en", "de"];
  const base = new URL("..", script.src).href;
  const api = `${base}api/v1/consent/public/${encodeURIComponent(script.dataset.siteKey || "")}`;
  // Strings a notice may leave out; a notice's own `texts` always win.
  const DEFAULTS = {
    en: {
      preferences_title: "Cookie preferences",
      preferences_description: "Choose the purposes you allow. You can change your choice at any time.",
      close: "Close",
      always_on: "Always on",
      services: "Services:",
      privacy_policy: "Privacy policy",
    },
    fr: {
      preferences_title: "Préférences cookies",
      preferences_description: "Choisissez les finalités que vous acceptez. Vous pouvez modifier votre choix à tout moment.",
      close: "Fermer",
      always_on: "Toujours actif",
      services: "Services :",
      privacy_policy: "Politique de confidentialité",
    },
    nl: {
      preferences_title: "Cookievoorkeuren",
      preferences_description: "Kies de doeleinden die u toestaat. U kunt uw keuze altijd wijzigen.",
      close: "Sluiten",
      always_on: "Altijd actief",
      services: "Diensten:",
      privacy_policy: "Privacybeleid",
    },
    de: {
      preferences_title: "Cookie-Einstellungen",
      preferences_description: "Wählen Sie die Zwecke, die Sie erlauben. Sie können Ihre Wahl jederzeit ändern.",
      close: "Schließen",
      always_on: "Immer aktiv",
      services: "Dienste:",
      privacy_policy: "Datenschutzerklärung",
    },
  };

  let notice = null; // the public notice: {version, sha256, validity_months, notice: {purposes, texts, …}}
  let lang = "en";
  let choice = readCookie(); // the mirror: {id, g: purposes granted, h: notice sha256, e: expiry (s), m: signals}
  let queue = loadQueue(); // choices not yet acknowledged by the server, oldest first
  let sending = false;
  let retryDelay = 1000;
  let ui = null;
  let openWhenReady = false;
  let lastUpdate = "";
  const listeners = [];

  // The mirror cookie --------------------------------------------------------------------------

  function readCookie() {
    const found = document.cookie.match(/(?:^|;\s*)gardien_consent=([^;]*)/);
    if (!found) return null;
    try {
      const value = JSON.parse(decodeURIComponent(found[1]));
      return value && typeof value.id === "string" && Array.isArray(value.g) ? value : null;
    } catch (error) {
      return null;
    }
  }

  function writeCookie(value) {
    const maxAge = Math.max(0, Math.floor(value.e - Date.now() / 1000));
    const secure = location.protocol === "https:" ? "; Secure" : "";
    document.cookie = `${COOKIE}=${encodeURIComponent(JSON.stringify(value))}; Max-Age=${maxAge}; Path=/; SameSite=Lax${secure}`;
    choice = value;
  }

  function forgetChoice() {
    document.cookie = `${COOKIE}=; Max-Age=0; Path=/; SameSite=Lax`;
    choice = choice && { id: choice.id, g: [], e: 0 };
  }

  function live(value) {
    return !!value && value.e * 1000 > Date.now();
  }

  function current(value) {
    return live(value) && !!notice && value.h === notice.sha256;
  }

  // Calendar months, as the server counts them: 31 August + 6 months is the last day of February.
  function addMonths(ms, months) {
    const date = new Date(ms);
    const day = date.getUTCDate();
    date.setUTCDate(1);
    date.setUTCMonth(date.getUTCMonth() + months);
    const last = new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 0)).getUTCDate();
    date.setUTCDate(Math.min(day, last));
    return date.getTime();
  }

  function uuid() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  // Blocked scripts and iframes, Consent Mode --------------------------------------------------

  function permitted(element, granted) {
    return element.dataset.purpose.trim().split(/\s+/).every((purpose) => granted.includes(purpose));
  }

  function release(granted) {
    document.querySelectorAll('script[type="text/plain"][data-purpose]').forEach((blocked) => {
      if (!permitted(blocked, granted)) return;
      const running = document.createElement("script");
      for (const attribute of blocked.attributes) {
        if (attribute.name !== "type") running.setAttribute(attribute.name, attribute.value);
      }
      if (blocked.dataset.type) running.type = blocked.dataset.type;
      running.nonce = blocked.nonce;
      running.async = false; // released scripts with a src run in document order, as they were written
      running.text = blocked.text;
      blocked.replaceWith(running);
    });
    document.querySelectorAll("iframe[data-purpose][data-src]").forEach((frame) => {
      if (!permitted(frame, granted)) return;
      frame.src = frame.dataset.src;
      frame.removeAttribute("data-src");
    });
  }

  function signalsFor(granted) {
    const signals = {};
    for (const purpose of notice.notice.purposes) {
      for (const signal of purpose.google_consent_mode || []) {
        signals[signal] = granted.includes(purpose.key) ? "granted" : "denied";
      }
    }
    return signals;
  }

  function updateConsentMode(signals) {
    if (!signals || !Object.keys(signals).length) return;
    const update = JSON.stringify(signals);
    if (update === lastUpdate) return; // the mirror and the server's answer agree: say it once
    lastUpdate = update;
    if (typeof window.gtag === "function") {
      window.gtag("consent", "update", signals);
    } else if (Array.isArray(window.dataLayer)) {
      // gtag.js reads commands as `arguments` objects, not arrays: push one the way gtag() does.
      (function () {
        window.dataLayer.push(arguments);
      })("consent", "update", signals);
    }
  }

  function apply(value) {
    release(value.g);
    updateConsentMode(value.m);
  }

  // Essential purposes count as granted from the start; the others only by a choice still alive.
  function grantedNow() {
    if (live(choice)) return choice.g;
    return notice ? notice.notice.purposes.filter((purpose) => purpose.essential).map((purpose) => purpose.key) : [];
  }

  function snapshot() {
    const granted = grantedNow();
    const keys = notice ? notice.notice.purposes.map((purpose) => purpose.key) : granted;
    const states = {};
    for (const key of keys) states[key] = granted.includes(key);
    return states;
  }

  function notify() {
    const states = snapshot();
    for (const listener of listeners) {
      try {
        listener(states);
      } catch (error) {
        setTimeout(() => {
          throw error;
        });
      }
    }
  }

  // Talking to Gardien: choices are kept locally and retried until the server has them ---------

  function loadQueue() {
    try {
      return JSON.parse(localStorage.getItem(PENDING)) || [];
    } catch (error) {
      return [];
    }
  }

  function storeQueue() {
    try {
      if (queue.length) localStorage.setItem(PENDING, JSON.stringify(queue));
      else localStorage.removeItem(PENDING);
    } catch (error) {
      // Storage refused (private mode): the queue lives as long as the page.
    }
  }

  async function flush() {
    if (sending || !queue.length) return;
    sending = true;
    const body = queue[0];
    let response = null;
    try {
      response = await fetch(`${api}/choices`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
    } catch (error) {
      response = null;
    }
    sending = false;
    if (!response || response.status >= 500 || response.status === 408 || response.status === 429) {
      setTimeout(flush, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 60000);
      return;
    }
    retryDelay = 1000;
    queue.shift();
    storeQueue();
    if (!queue.length && choice && body.consent_id === choice.id) {
      if (response.ok) adopt(await response.json());
      else askAgain(); // refused (the notice changed, or GPC was not confirmed): that choice does not count
    }
    flush();
  }

  // The server's answer is authoritative: it may have expired, withdrawn or replaced the choice.
  function adopt(state) {
    if (state.status !== "valid" || (notice && state.notice_sha256 !== notice.sha256)) {
      askAgain();
      return;
    }
    const granted = Object.keys(state.states).filter((key) => state.states[key] === "granted");
    const before = live(choice) ? choice.g.slice().sort().join() : "";
    writeCookie({
      id: state.consent_id,
      g: granted,
      h: state.notice_sha256,
      e: Math.floor(Date.parse(state.expires_at) / 1000),
      m: state.consent_mode,
    });
    if (granted.slice().sort().join() === before) return;
    apply(choice);
    notify();
  }

  async function verify() {
    try {
      const response = await fetch(`${api}/choices/${encodeURIComponent(choice.id)}`);
      if (response.status === 404) askAgain();
      else if (response.ok && !queue.length) adopt(await response.json());
    } catch (error) {
      // Offline: the mirror stands until the server can be asked.
    }
  }

  function decide(method, surface, states) {
    const granted = notice.notice.purposes
      .filter((p) => p.essential || method === "accept_all" || (method === "custom" && states[p.key] === "granted"))
      .map((p) => p.key);
    const id = choice ? choice.id : uuid();
    const expiry = addMonths(Date.now(), notice.validity_months);
    writeCookie({ id, g: granted, h: notice.sha256, e: Math.floor(expiry / 1000), m: signalsFor(granted) });
    const body = { consent_id: id, method, notice_sha256: notice.sha256, locale: lang };
    if (surface) body.surface = surface;
    if (method === "custom") body.states = states;
    queue = queue.concat([body]).slice(-10);
    storeQueue();
    apply(choice);
    settled();
    notify();
    flush();
  }

  // The interface ----------------------------------------------------------------------------

  function pickLocale() {
    const wanted = [script.dataset.locale, document.documentElement.lang].concat(
      navigator.languages || [navigator.language],
    );
    for (const tag of wanted) {
      const primary = (tag || "").slice(0, 2).toLowerCase();
      if (LOCALES.includes(primary)) return primary;
    }
    return "en";
  }

  function text(key) {
    const localised = notice.notice.texts[key];
    return (localised && localised[lang]) || DEFAULTS[lang][key] || "";
  }

  function h(tag, attributes, ...children) {
    const element = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
      else if (value === true) element.setAttribute(name, "");
      else if (value !== false && value != null) element.setAttribute(name, value);
    }
    element.append(...children.filter((child) => child != null));
    return element;
  }

  function button(label, kind, onclick) {
    return h("button", { type: "button", class: `gdn-btn ${kind}`, onclick }, label);
  }

  function focusables(container) {
    return Array.from(
      container.querySelectorAll("button, a[href], input:not([disabled]), [tabindex]:not([tabindex='-1'])"),
    ).filter((element) => !element.hidden && element.getClientRects().length);
  }

  function build() {
    const host = h("div", { id: "gardien-consent" });
    const root = host.attachShadow({ mode: "open" });
    const stylesheet = h("link", { rel: "stylesheet", href: `${base}consent/banner.css` });
    const styled = new Promise((resolve) => {
      stylesheet.onload = stylesheet.onerror = resolve;
      setTimeout(resolve, 3000);
    });
    const policy = notice.notice.privacy_policy_url;

    const customise = button(text("customise"), "gdn-alt", () => openPreferences(customise));
    const banner = h(
      "div",
      { class: "gdn-banner", role: "dialog", "aria-labelledby": "gdn-title", "aria-describedby": "gdn-desc" },
      h("h2", { id: "gdn-title" }, text("title")),
      h(
        "p",
        { id: "gdn-desc", class: "gdn-desc" },
        text("description"),
        policy ? " " : null,
        policy ? h("a", { href: policy }, text("privacy_policy")) : null,
      ),
      h(
        "div",
        { class: "gdn-actions" },
        button(text("reject_all"), "gdn-choice", () => decide("reject_all", "first_layer")),
        button(text("accept_all"), "gdn-choice", () => decide("accept_all", "first_layer")),
        customise,
      ),
    );
    banner.tabIndex = -1;

    const switches = {};
    const purposes = notice.notice.purposes.map((purpose) => {
      const id = `gdn-p-${purpose.key}`;
      const toggle = h("input", {
        type: "checkbox",
        role: "switch",
        class: "gdn-switch",
        id: `${id}-on`,
        "aria-labelledby": `${id}-title`,
        "aria-describedby": `${id}-desc`,
        checked: purpose.essential,
        disabled: purpose.essential,
      });
      if (!purpose.essential) switches[purpose.key] = toggle;
      const services = (purpose.services || []).map((service) =>
        h(
          "li",
          null,
          service.privacy_policy_url ? h("a", { href: service.privacy_policy_url }, service.name) : service.name,
          ` (${service.provider})`,
        ),
      );
      return h(
        "li",
        { class: "gdn-purpose" },
        h(
          "div",
          { class: "gdn-purpose-head" },
          h("h3", { id: `${id}-title` }, purpose.title[lang]),
          h(
            "label",
            { class: "gdn-toggle" },
            purpose.essential ? h("span", null, text("always_on")) : null,
            toggle,
          ),
        ),
        h("p", { id: `${id}-desc` }, purpose.description[lang]),
        services.length ? h("p", { class: "gdn-services-label" }, text("services")) : null,
        services.length ? h("ul", { class: "gdn-services" }, ...services) : null,
      );
    });
    const customStates = () => {
      const states = {};
      for (const [key, toggle] of Object.entries(switches)) states[key] = toggle.checked ? "granted" : "denied";
      return states;
    };
    const preferences = h(
      "div",
      {
        class: "gdn-prefs",
        role: "dialog",
        "aria-modal": "true",
        "aria-labelledby": "gdn-prefs-title",
        "aria-describedby": "gdn-prefs-desc",
      },
      h(
        "div",
        { class: "gdn-head" },
        h("h2", { id: "gdn-prefs-title" }, text("preferences_title")),
        h("button", { type: "button", class: "gdn-close", "aria-label": text("close"), onclick: closePreferences }, "×"),
      ),
      h("p", { id: "gdn-prefs-desc", class: "gdn-desc" }, text("preferences_description")),
      h("ul", { class: "gdn-purposes" }, ...purposes),
      h(
        "div",
        { class: "gdn-actions" },
        button(text("reject_all"), "gdn-choice", () => decide("reject_all", "preferences")),
        button(text("accept_all"), "gdn-choice", () => decide("accept_all", "preferences")),
        button(text("save"), "gdn-alt", () => decide("custom", "preferences", customStates())),
      ),
    );
    preferences.tabIndex = -1;
    const backdrop = h("div", { class: "gdn-backdrop", hidden: true }, preferences);
    backdrop.addEventListener("click", (event) => {
      if (event.target === backdrop) closePreferences();
    });
    preferences.addEventListener("keydown", trapFocus);

    const settings = h(
      "button",
      { type: "button", class: "gdn-settings", "aria-haspopup": "dialog", hidden: true },
      text("settings"),
    );
    settings.addEventListener("click", () => openPreferences(settings));

    banner.hidden = true;
    root.append(stylesheet, h("div", { class: "gdn-root", lang }, banner, backdrop, settings));
    document.body.append(host);
    ui = { root, banner, backdrop, preferences, settings, switches, styled, returnTo: null };
  }

  function trapFocus(event) {
    if (event.key === "Escape") {
      event.preventDefault();
      closePreferences();
      return;
    }
    if (event.key !== "Tab") return;
    const items = focusables(ui.preferences);
    const first = items[0];
    const last = items[items.length - 1];
    const active = ui.root.activeElement;
    if (event.shiftKey && (active === first || active === ui.preferences)) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && active === last) {
      event.preventDefault();
      first.focus();
    }
  }

  async function showBanner() {
    await ui.styled;
    ui.settings.hidden = true;
    ui.banner.hidden = false;
    ui.banner.focus();
  }

  function settled() {
    const hadFocus = !!ui.root.activeElement;
    ui.banner.hidden = true;
    ui.backdrop.hidden = true;
    ui.banner.inert = false;
    ui.settings.hidden = false;
    if (hadFocus) ui.settings.focus();
  }

  async function openPreferences(opener) {
    if (!ui) {
      openWhenReady = true;
      return;
    }
    await ui.styled;
    const granted = current(choice) ? choice.g : [];
    for (const [key, toggle] of Object.entries(ui.switches)) toggle.checked = granted.includes(key);
    ui.returnTo = opener || document.activeElement;
    ui.banner.inert = true;
    ui.backdrop.hidden = false;
    ui.preferences.focus();
  }

  function closePreferences() {
    ui.backdrop.hidden = true;
    ui.banner.inert = false;
    const target = ui.returnTo && ui.returnTo.isConnected && !ui.returnTo.hidden ? ui.returnTo : null;
    if (target) target.focus();
    else if (!ui.banner.hidden) ui.banner.focus();
  }

  function askAgain() {
    forgetChoice();
    notify();
    if (ui) showBanner();
  }

  // Start --------------------------------------------------------------------------------------

  // Blocked elements that the page adds later are released as soon as they appear.
  const observer = new MutationObserver(() => release(grantedNow()));

  async function start() {
    if (live(choice)) apply(choice); // released before any network answer; the server may correct it
    observer.observe(document.documentElement, { childList: true, subtree: true });
    flush();
    let response;
    try {
      response = await fetch(`${api}/notice`);
    } catch (error) {
      return;
    }
    if (!response.ok) return;
    notice = await response.json();
    lang = pickLocale();
    build();
    if (current(choice)) {
      apply(choice);
      settled();
      if (!queue.length) verify();
    } else if (navigator.globalPrivacyControl === true) {
      decide("gpc");
    } else {
      if (live(choice)) forgetChoice();
      release(grantedNow());
      showBanner();
    }
    if (openWhenReady) openPreferences(null);
  }

  window.Gardien = window.Gardien || {};
  window.Gardien.consent = {
    open: () => openPreferences(null),
    get: (purpose) => snapshot()[purpose] === true,
    onChange: (callback) => {
      listeners.push(callback);
      return () => {
        const index = listeners.indexOf(callback);
        if (index >= 0) listeners.splice(index, 1);
      };
    },
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
