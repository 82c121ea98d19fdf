// The till page: keyboard first. Everything that matters lives in the till's SQLite; this page
// holds only the unfinished cart (a reload loses it, nothing else; a held cart is in SQLite).
// Quantities, codes and scale labels are checked by the server with the sale's own rules.
"use strict";
(function () {
  const TOKEN = document.querySelector('meta[name="till-token"]').content;
  const $ = (id) => document.getElementById(id);
  let lang = localStorage.getItem("till.lang") === "bn" ? "bn" : "en";
  const t = (key, vars) => {
    let s = (window.TILL_WORDS[lang] || {})[key] || window.TILL_WORDS.en[key] || key;
    for (const [k, v] of Object.entries(vars || {})) s = s.replace("{" + k + "}", v);
    return s;
  };

  // --- money and quantities: integer paisa, quantities as thousandths (never floats) -------------
  function taka(paisa) {
    const neg = paisa < 0, abs = Math.abs(paisa);
    const whole = Math.floor(abs / 100).toLocaleString("en-IN"), frac = String(abs % 100).padStart(2, "0");
    return (neg ? "-" : "") + "৳" + whole + "." + frac;
  }
  function parseMilli(text) {  // "1.25" -> 1250, for a quantity the server has already checked
    const m = /^\s*(\d{1,7})(?:\.(\d{0,3}))?\s*$/.exec(text || "");
    return m ? Number(m[1]) * 1000 + Number((m[2] || "").padEnd(3, "0")) : null;
  }
  function milliText(v) {
    const whole = Math.floor(v / 1000), frac = v % 1000;
    return frac ? whole + "." + String(frac).padStart(3, "0").replace(/0+$/, "") : String(whole);
  }
  function parsePaisa(text) {  // "150.5" -> 15050
    const m = /^\s*(\d{1,9})(?:\.(\d{0,2}))?\s*$/.exec(text || "");
    return m ? Number(m[1]) * 100 + Number((m[2] || "").padEnd(2, "0")) : null;
  }
  // Same rule as the store: quantity x unit price, rounded half up to a whole paisa.
  const lineTotal = (milli, price) => Number((BigInt(milli) * BigInt(price) + 500n) / 1000n);
  const newKey = () => crypto.randomUUID().replace(/-/g, "");

  async function api(method, path, body) {
    const opts = { method, headers: { "X-Till-Token": TOKEN } };
    if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
    const res = await fetch(path, opts);
    let data = {};
    try { data = await res.json(); } catch (e) { /* not JSON */ }
    if (res.status === 401 && data.sign_in) { cashier = null; signInRequired = true; showSignIn(); }
    return { ok: res.ok, status: res.status, data };
  }

  // --- state ---------------------------------------------------------------------------------
  const cart = { lines: [], selected: -1, key: newKey() };
  let method = "cash", submitting = false, lastSale = null, lastTendered = null, confirmLarge = false;
  let zone = "Asia/Dhaka", cashier = null, signInRequired = false, heldCount = 0;
  let results = [], highlighted = -1, searchTimer = null, searchSeq = 0;

  function say(text, kind) {
    const m = $("message");
    m.textContent = text;
    m.className = kind || "";
  }

  function cartTotal() { return cart.lines.reduce((s, l) => s + lineTotal(l.milli, l.price), 0); }

  function renderCart() {
    const body = $("cart-lines");
    body.textContent = "";
    cart.lines.forEach((l, i) => {
      const tr = document.createElement("tr");
      if (i === cart.selected) tr.className = "selected";
      const name = document.createElement("td");
      name.textContent = l.name;
      const sku = document.createElement("div");
      sku.className = "muted"; sku.textContent = l.sku + (l.weighed ? " · " + l.unit : "") + (l.code ? " · " + t("scale_label") : "");
      name.appendChild(sku);
      const qty = document.createElement("td");
      qty.className = "num";
      const input = document.createElement("input");
      input.className = "qty"; input.value = milliText(l.milli); input.inputMode = "decimal";
      input.readOnly = !!l.code;  // a scale label's weight is the label's
      input.setAttribute("aria-label", t("qty"));
      input.addEventListener("change", () => setQty(i, input.value));
      input.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); setQty(i, input.value); input.blur(); } });
      qty.appendChild(input);
      const price = document.createElement("td"); price.className = "num"; price.textContent = taka(l.price);
      const amount = document.createElement("td"); amount.className = "num"; amount.textContent = taka(lineTotal(l.milli, l.price));
      const rm = document.createElement("td");
      const btn = document.createElement("button");
      btn.type = "button"; btn.className = "remove"; btn.textContent = "✕"; btn.title = t("hint_remove");
      btn.addEventListener("click", () => removeLine(i));
      rm.appendChild(btn);
      tr.append(name, qty, price, amount, rm);
      tr.addEventListener("click", () => { cart.selected = i; renderCart(); });
      body.appendChild(tr);
    });
    $("cart-empty").hidden = cart.lines.length > 0;
    $("total").textContent = taka(cartTotal());
    $("line-count").textContent = cart.lines.length ? cart.lines.length + " " + t("lines") : "";
    $("hold-label").textContent = cart.lines.length ? t("hold") : t("held_carts", { n: heldCount });
    renderChange();
  }

  // The quantity is checked by the server with the sale's own rule (pieces whole, weighed goods
  // up to 3 decimals, "1,5" refused with a hint), so the till and the command line agree.
  let qtyChecks = Promise.resolve();
  function setQty(i, text) {
    const l = cart.lines[i];
    if (!l || l.code) return qtyChecks;
    qtyChecks = qtyChecks.then(async () => {
      const r = await api("GET", "/api/quantity?sku=" + encodeURIComponent(l.sku) + "&q=" + encodeURIComponent(text));
      if (r.ok) { l.milli = parseMilli(r.data.qty); confirmLarge = false; say("", ""); }
      else say(r.data.error || t("qty") + ": " + text + " ✗", "bad");
      renderCart();
    });
    return qtyChecks;
  }

  // `found` is what the server's lookup answered: a product, and for a scale label its code,
  // quantity and printed price. A label is a line of its own; a product scanned again adds one.
  function addFound(found) {
    const p = found.product;
    $("done").hidden = true;
    confirmLarge = false;
    const same = found.code ? -1 : cart.lines.findIndex((l) => l.sku === p.sku && !l.code);
    if (same >= 0) { cart.lines[same].milli += found.qty ? parseMilli(found.qty) : 1000; cart.selected = same; }
    else {
      cart.lines.push({ sku: p.sku, name: p.name, price: found.price === null || found.price === undefined ? p.price : found.price,
                        unit: p.unit, weighed: p.weighed, milli: found.qty ? parseMilli(found.qty) : 1000, code: found.code || null });
      cart.selected = cart.lines.length - 1;
    }
    say(t("added", { name: p.name }), "good");
    renderCart();
  }
  const addProduct = (p) => addFound({ product: p });

  function removeLine(i) {
    if (i < 0 || i >= cart.lines.length) return;
    confirmLarge = false;
    cart.lines.splice(i, 1);
    cart.selected = Math.min(cart.selected, cart.lines.length - 1);
    renderCart();
  }

  function clearCart() {
    cart.lines = []; cart.selected = -1; cart.key = newKey(); confirmLarge = false;
    closePayment();
    renderCart();
  }

  // --- scan and search -----------------------------------------------------------------------
  // true: added; false: no product has this code; a string: why the code cannot be sold (a misread label).
  async function lookupCode(code) {
    const r = await api("GET", "/api/products/code/" + encodeURIComponent(code));
    if (r.ok) { addFound(r.data); return true; }
    return r.status === 400 ? (r.data.error || String(r.status)) : false;
  }

  function renderResults() {
    const ul = $("results");
    ul.textContent = "";
    results.forEach((p, i) => {
      const li = document.createElement("li");
      li.setAttribute("role", "option");
      if (i === highlighted) { li.className = "hl"; li.setAttribute("aria-selected", "true"); }
      const n = document.createElement("span"); n.textContent = p.name;
      const s = document.createElement("span"); s.className = "muted"; s.textContent = " " + p.sku + (p.barcode ? " · " + p.barcode : "");
      const pr = document.createElement("span"); pr.className = "num"; pr.textContent = taka(p.price);
      li.append(n, s, pr);
      li.addEventListener("mousedown", (e) => { e.preventDefault(); pick(i); });
      ul.appendChild(li);
    });
    ul.hidden = results.length === 0;
  }

  async function runSearch(q) {
    const mine = ++searchSeq;
    if (!q.trim()) { results = []; highlighted = -1; renderResults(); return; }
    const r = await api("GET", "/api/products?limit=12&q=" + encodeURIComponent(q.normalize("NFKC")));
    if (mine !== searchSeq) return;  // a newer query is on its way
    results = r.ok ? r.data.products : [];
    highlighted = results.length ? 0 : -1;
    renderResults();
  }

  function resetSearch() {
    searchSeq++;
    clearTimeout(searchTimer);
    $("search").value = ""; results = []; highlighted = -1; renderResults();
  }

  function pick(i) {
    const p = results[i];
    resetSearch();
    $("search").blur();
    if (p) addProduct(p);
  }

  // Enter in the search box: an exact barcode or SKU (what a scanner sends) wins; otherwise the
  // highlighted result. A code of digits that is not in the catalog adds nothing.
  // Scans are handled one after another, and paying waits for the ones still being looked up,
  // so a quick F4 after the last scan pays for every item scanned.
  let scans = Promise.resolve();
  function enterSearch() {
    const q = $("search").value.trim();
    const chosen = highlighted >= 0 && results.length ? results[highlighted] : null;
    const picked = highlighted > 0;  // the cashier moved with the arrows: take that one
    resetSearch();
    $("search").blur();
    scans = scans.then(() => enterCode(q, chosen, picked)).catch((e) => say(t("failed", { e: e.message }), "bad"));
    return scans;
  }
  async function enterCode(q, chosen, picked) {
    if (!q) return;
    if (picked && chosen) { addProduct(chosen); return; }
    const looked = await lookupCode(q);
    if (looked === true) return;
    if (typeof looked === "string") { say(looked, "bad"); return; }
    if (/^\d+$/.test(q) || !chosen) { say(/^\d+$/.test(q) ? t("unknown_code", { code: q }) : t("not_found", { q }), "bad"); return; }
    addProduct(chosen);
  }

  $("search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    const q = $("search").value;
    searchTimer = setTimeout(() => runSearch(q), 60);
  });
  $("search").addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown" && results.length) { e.preventDefault(); highlighted = Math.min(results.length - 1, highlighted + 1); renderResults(); }
    else if (e.key === "ArrowUp" && results.length) { e.preventDefault(); highlighted = Math.max(0, highlighted - 1); renderResults(); }
    else if (e.key === "Enter") { e.preventDefault(); e.stopPropagation(); enterSearch(); }
    else if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); resetSearch(); $("search").blur(); }
  });

  // --- payment -------------------------------------------------------------------------------
  async function openPayment() {
    await scans;
    if (!cart.lines.length) { say(t("empty_cart"), "bad"); return; }
    $("payment").hidden = false; $("done").hidden = true;
    document.body.classList.add("paying");
    choose(method);
  }
  function closePayment() {
    $("payment").hidden = true; $("tendered").value = "";
    document.body.classList.remove("paying");
    // Focus back on the page, so the scanner's next digits start the next line.
    if (document.activeElement && document.activeElement !== document.body) document.activeElement.blur();
  }
  const paying = () => !$("payment").hidden;

  function choose(m) {
    method = m;
    document.querySelectorAll(".method").forEach((b) => b.classList.toggle("on", b.dataset.method === m));
    $("cash-box").hidden = m !== "cash";
    if (m === "cash") $("tendered").focus(); else $("tendered").blur();
    renderChange();
  }

  function renderChange() {
    const tendered = parsePaisa($("tendered").value);
    const change = tendered === null ? 0 : tendered - cartTotal();
    $("change").textContent = taka(Math.max(0, change));
    $("change").classList.toggle("bad", tendered !== null && change < 0);
  }

  function addNote(n) {
    const now = parsePaisa($("tendered").value) || 0;
    $("tendered").value = ((now + n * 100) / 100).toFixed(2);
    renderChange();
  }

  async function confirmSale() {
    if (submitting || !paying()) return;
    await scans; await qtyChecks;
    if (!cart.lines.length) { say(t("empty_cart"), "bad"); return; }
    const total = cartTotal();
    let tendered = null;
    if (method === "cash" && $("tendered").value.trim()) {
      tendered = parsePaisa($("tendered").value);
      if (tendered === null || tendered < total) { say(t("short_tender"), "bad"); return; }
    }
    submitting = true;
    $("confirm").disabled = true;
    say(t("sending"), "");
    try {
      const r = await api("POST", "/api/sales", { key: cart.key, lines: cartLines(), payment: method, confirmed: confirmLarge });
      if (r.status === 409 && r.data.confirm) {  // a very large quantity: Enter again records it as it is
        confirmLarge = true;
        say(r.data.error + " · " + t("confirm_again"), "bad");
        return;
      }
      if (!r.ok) { say(t("failed", { e: r.data.error || r.status }), "bad"); return; }
      // Only now, with the commit confirmed by the server, does the screen say "recorded".
      lastSale = r.data.sale; lastTendered = tendered;
      clearCart();
      $("done").hidden = false;
      $("done-title").textContent = t("recorded", { n: lastSale.number }) + " · " + taka(lastSale.total);
      $("done-change").textContent = tendered === null ? "-" : taka(tendered - lastSale.total);
      say(t("recorded", { n: lastSale.number }), "good");
      refreshStatus();
    } catch (e) {
      say(t("failed", { e: e.message }), "bad");  // the same key is sent again on a retry
    } finally {
      submitting = false; $("confirm").disabled = false;
    }
  }

  const cartLines = () => cart.lines.map((l) => (l.code ? { code: l.code } : { sku: l.sku, qty: milliText(l.milli) }));

  function openReceipt(number, tendered) {
    let url = "/receipt?number=" + encodeURIComponent(number) + "&paper=80&lang=" + lang;
    if (tendered !== null && tendered !== undefined) url += "&tendered=" + tendered;
    window.open(url, "receipt", "width=420,height=700");
  }

  $("pay").addEventListener("click", openPayment);
  $("confirm").addEventListener("click", confirmSale);
  $("print-last").addEventListener("click", () => lastSale && openReceipt(lastSale.number, lastTendered));
  document.querySelectorAll(".method").forEach((b) => b.addEventListener("click", () => choose(b.dataset.method)));
  document.querySelectorAll(".note").forEach((b) => b.addEventListener("click", () => addNote(Number(b.dataset.note))));
  $("tendered").addEventListener("input", renderChange);

  // --- sales list, void, reprint ---------------------------------------------------------------
  let sales = [], salePick = 0;
  const salesOpen = () => !$("sales-panel").hidden;
  let dhaka = new Intl.DateTimeFormat("en-GB", { timeZone: zone, dateStyle: "short", timeStyle: "medium" });
  function setZone(name) {
    if (!name || name === zone) return;
    try { dhaka = new Intl.DateTimeFormat("en-GB", { timeZone: name, dateStyle: "short", timeStyle: "medium" }); zone = name; }
    catch (e) { return; }
    applyZone();
  }
  function applyZone() { document.querySelectorAll("[data-zone]").forEach((el) => { el.textContent = t(el.dataset.zone, { zone }); }); }

  async function openSales() {
    const r = await api("GET", "/api/sales?limit=30");
    sales = r.ok ? r.data.sales : [];
    salePick = 0;
    $("sales-panel").hidden = false; $("void-box").hidden = true;
    renderSales();
  }
  function closeSales() { $("sales-panel").hidden = true; $("void-box").hidden = true; }

  function renderSales() {
    const body = $("sales-rows");
    body.textContent = "";
    sales.forEach((s, i) => {
      const tr = document.createElement("tr");
      if (i === salePick) tr.className = "selected";
      const note = s.voids ? t("void_of", { v: s.voids }) : s.voided_by ? t("voided_by", { v: s.voided_by }) + (s.reason ? "" : "") : "";
      const cells = [String(s.number), dhaka.format(new Date(s.recorded_at)), t("kind_" + s.kind) + (note ? " · " + note : "") + (s.reason ? " (" + s.reason + ")" : "") + (s.cashier ? " · " + s.cashier : ""),
        taka(s.total), t(s.payment), t(s.state)];
      cells.forEach((c, j) => { const td = document.createElement("td"); td.textContent = c; if (j === 0 || j === 3) td.className = "num"; tr.appendChild(td); });
      const td = document.createElement("td");
      const rp = document.createElement("button"); rp.type = "button"; rp.className = "small"; rp.textContent = t("reprint");
      rp.addEventListener("click", () => openReceipt(s.number, null));
      td.appendChild(rp);
      tr.appendChild(td);
      tr.addEventListener("click", () => { salePick = i; renderSales(); });
      body.appendChild(tr);
    });
  }

  function askVoid() {
    const s = sales[salePick];
    if (!s || s.kind !== "sale" || s.voided_by) return;
    $("void-box").hidden = false; $("void-seq").textContent = s.number;
    $("void-reason").value = ""; $("void-reason").focus();
  }

  async function confirmVoid() {
    const s = sales[salePick];
    if (!s || submitting) return;
    submitting = true;
    try {
      const r = await api("POST", "/api/sales/" + encodeURIComponent(s.number) + "/void", { reason: $("void-reason").value });
      if (!r.ok) { say(t("failed", { e: r.data.error || r.status }), "bad"); return; }
      say(t("voided", { n: s.number, v: r.data.sale.number }), "good");
      $("void-reason").blur();
      await openSales();
      refreshStatus();
    } finally { submitting = false; }
  }
  $("void-confirm").addEventListener("click", confirmVoid);
  $("void-reason").addEventListener("keydown", (e) => {
    if (e.key === "Enter") { e.preventDefault(); e.stopPropagation(); confirmVoid(); }
    else if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); $("void-box").hidden = true; $("void-reason").blur(); }
  });
  $("open-sales").addEventListener("click", openSales);

  // --- sync line -------------------------------------------------------------------------------
  async function refreshStatus() {
    let r;
    try { r = await api("GET", "/api/status"); } catch (e) { return; }
    if (!r.ok) return;
    const s = r.data;
    $("branch").textContent = s.branch || "-";
    setZone(s.time_zone);
    const pill = $("sync-state");
    pill.textContent = s.syncing ? t("syncing") : s.online ? t("online") : t("offline");
    pill.className = "pill " + (s.syncing ? "busy" : s.online ? "on" : "off");
    $("sync-pending").textContent = s.pending;
    $("sync-last").textContent = s.last_sync ? dhaka.format(new Date(s.last_sync)) : t("never");
    $("sync-error").textContent = s.last_error || t("none");
    $("sync-error-wrap").classList.toggle("bad", !!s.last_error);
    $("sync-message").textContent = s.sync_message || "";  // what the background sync does, in plain words
  }
  async function syncNow() {
    await api("POST", "/api/sync");
    say(t("sync_started"), "");
    refreshStatus();
  }
  $("sync-now").addEventListener("click", syncNow);

  // --- held carts: kept in the till's database, so a reload or a restart keeps them ------------------
  let held = [], heldPick = 0;
  const heldOpen = () => !$("held-panel").hidden;
  async function refreshHeld() {
    const r = await api("GET", "/api/held");
    held = r.ok ? r.data.held : [];
    heldCount = held.length;
    $("hold-label").textContent = cart.lines.length ? t("hold") : t("held_carts", { n: heldCount });
  }
  async function holdOrList() {
    await scans; await qtyChecks;
    if (!cart.lines.length) { await openHeld(); return; }
    const r = await api("POST", "/api/held", { lines: cartLines() });
    if (!r.ok) { say(t("failed", { e: r.data.error || r.status }), "bad"); return; }
    clearCart();
    say(t("held_done", { n: r.data.held.line_count }), "good");
    refreshHeld();
  }
  async function openHeld() {
    await refreshHeld();
    if (!held.length) { say(t("no_held"), ""); return; }
    heldPick = 0; $("held-panel").hidden = false; renderHeld();
  }
  function closeHeld() { $("held-panel").hidden = true; }
  function renderHeld() {
    const body = $("held-rows");
    body.textContent = "";
    held.forEach((h, i) => {
      const tr = document.createElement("tr");
      if (i === heldPick) tr.className = "selected";
      const cells = [dhaka.format(new Date(h.held_at)), h.first_name + (h.line_count > 1 ? " +" + (h.line_count - 1) : ""),
        taka(h.total), h.cashier || ""];
      cells.forEach((c, j) => { const td = document.createElement("td"); td.textContent = c; if (j === 2) td.className = "num"; tr.appendChild(td); });
      tr.addEventListener("click", () => { heldPick = i; resumeHeld(); });
      body.appendChild(tr);
    });
  }
  async function resumeHeld() {
    const h = held[heldPick];
    if (!h || submitting) return;
    submitting = true;
    try {
      const r = await api("POST", "/api/held/" + h.id + "/resume");
      if (!r.ok) { say(t("failed", { e: r.data.error || r.status }), "bad"); return; }
      closeHeld();
      clearCart();
      r.data.lines.forEach((found) => addFound(found));
      say(t("resumed", { n: r.data.lines.length }), "good");
    } finally { submitting = false; refreshHeld(); }
  }
  $("hold").addEventListener("click", holdOrList);

  // --- cashier: who is signed in; once the manager has made cashiers, the till asks first -------
  const signInOpen = () => !$("signin-panel").hidden;
  function renderCashier() {
    $("cashier-wrap").hidden = !cashier;
    $("cashier-name").textContent = cashier || "";
    if (signInRequired && !cashier) showSignIn(); else $("signin-panel").hidden = true;
  }
  function showSignIn() {
    if (signInOpen()) return;
    $("signin-panel").hidden = false; $("signin-error").textContent = "";
    $("signin-name").value = ""; $("signin-pin").value = ""; $("signin-name").focus();
  }
  async function refreshSession() {
    const r = await api("GET", "/api/session");
    if (!r.ok) return;
    cashier = r.data.cashier; signInRequired = r.data.required;
    renderCashier();
  }
  async function signIn() {
    const r = await api("POST", "/api/session", { name: $("signin-name").value, pin: $("signin-pin").value });
    $("signin-pin").value = "";
    if (!r.ok) { $("signin-error").textContent = r.data.error || String(r.status); $("signin-pin").focus(); return; }
    cashier = r.data.cashier;
    $("signin-panel").hidden = true;
    document.activeElement && document.activeElement.blur();
    renderCashier();
    say(t("signed_in", { name: cashier }), "good");
  }
  async function signOut() {
    const r = await api("POST", "/api/session/out");
    if (r.ok) { cashier = null; signInRequired = r.data.required; renderCashier(); }
  }
  $("signin-go").addEventListener("click", signIn);
  $("signin-name").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); e.stopPropagation(); $("signin-pin").focus(); } });
  $("signin-pin").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); e.stopPropagation(); signIn(); } });
  $("sign-out").addEventListener("click", signOut);

  // --- language --------------------------------------------------------------------------------
  function applyLang() {
    document.documentElement.lang = lang;
    document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
    applyZone(); renderCart(); if (salesOpen()) renderSales(); if (heldOpen()) renderHeld(); refreshStatus(); refreshHeld();
  }
  $("lang").addEventListener("click", () => { lang = lang === "en" ? "bn" : "en"; localStorage.setItem("till.lang", lang); applyLang(); });

  // --- keys ------------------------------------------------------------------------------------
  // Focus rests on the page, not in a field, so a keyboard-wedge scanner's digits and Enter reach
  // the search box from the moment the page opens and after every action.
  const inField = (el) => el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA");
  document.addEventListener("keydown", (e) => {
    const k = e.key;
    if (signInOpen()) {  // the sign-in fields take every key but the language switch
      if (k === "F1") { e.preventDefault(); $("lang").click(); }
      return;
    }
    if (e.ctrlKey && (k === "q" || k === "Q")) { e.preventDefault(); signOut(); return; }
    if (heldOpen()) {
      e.preventDefault();
      if (k === "Escape" || k === "Insert") closeHeld();
      else if (k === "ArrowDown") { heldPick = Math.min(held.length - 1, heldPick + 1); renderHeld(); }
      else if (k === "ArrowUp") { heldPick = Math.max(0, heldPick - 1); renderHeld(); }
      else if (k === "Enter") resumeHeld();
      return;
    }
    if (k === "Insert" && !paying() && !salesOpen()) { e.preventDefault(); holdOrList(); return; }
    const fkeys = {
      F1: () => $("lang").click(), F2: () => $("search").focus(), F3: () => (salesOpen() ? closeSales() : openSales()),
      F4: () => (paying() ? confirmSale() : openPayment()), F5: syncNow,
      F6: () => paying() && choose("cash"), F7: () => paying() && choose("card"), F8: () => paying() && choose("mobile"),
      F9: () => paying() && addNote(100), F10: () => paying() && addNote(500), F11: () => paying() && addNote(1000),
    };
    if (fkeys[k]) { e.preventDefault(); fkeys[k](); return; }
    if (e.ctrlKey && (k === "p" || k === "P")) { e.preventDefault(); if (lastSale) openReceipt(lastSale.number, lastTendered); return; }
    if (salesOpen()) {
      if (inField(e.target)) return;
      if (k === "Escape") { e.preventDefault(); closeSales(); }
      else if (k === "ArrowDown") { e.preventDefault(); salePick = Math.min(sales.length - 1, salePick + 1); renderSales(); }
      else if (k === "ArrowUp") { e.preventDefault(); salePick = Math.max(0, salePick - 1); renderSales(); }
      else if (k === "v" || k === "V") { e.preventDefault(); askVoid(); }
      else if ((k === "r" || k === "R") && sales[salePick]) { e.preventDefault(); openReceipt(sales[salePick].number, null); }
      return;
    }
    if (paying()) {
      if (k === "Enter") { e.preventDefault(); confirmSale(); return; }
      if (k === "Escape" && confirmLarge) { e.preventDefault(); confirmLarge = false; closePayment(); say("", ""); return; }
      if (k === "Escape") { e.preventDefault(); closePayment(); $("tendered").blur(); return; }
      if (e.target === $("tendered")) return;
    }
    if (inField(e.target)) return;
    if (k === "Escape") { e.preventDefault(); if ($("search").value) resetSearch(); else $("done").hidden = true; return; }
    if (k === "ArrowDown" && cart.lines.length) { e.preventDefault(); cart.selected = Math.min(cart.lines.length - 1, cart.selected + 1); renderCart(); return; }
    if (k === "ArrowUp" && cart.lines.length) { e.preventDefault(); cart.selected = Math.max(0, cart.selected - 1); renderCart(); return; }
    if (k === "Delete") { e.preventDefault(); removeLine(cart.selected); return; }
    if (k === "*") {
      e.preventDefault();
      const rows = document.querySelectorAll("#cart-lines input.qty");
      if (rows[cart.selected]) { rows[cart.selected].focus(); rows[cart.selected].select(); }
      return;
    }
    if (k === "Enter" && $("search").value) { e.preventDefault(); enterSearch(); return; }
    // A printable key (a scanner's digit, or the first letter the cashier types) goes to search.
    if (k.length === 1 && !e.ctrlKey && !e.altKey && !e.metaKey) {
      e.preventDefault();
      const box = $("search");
      box.value += k;
      box.dispatchEvent(new Event("input"));
      if (!/^\d$/.test(k)) box.focus();  // typing a name: keep typing in the box
    }
  });

  applyLang();
  refreshSession();
  setInterval(refreshStatus, 3000);
})();
