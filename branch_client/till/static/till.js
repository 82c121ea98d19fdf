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
  // A line: {sku, name, price (catalog or label), unit, weighed, milli, code, override: {price, reason}|null,
  // discount: {kind, value, reason}|null}; the cart's own discount likewise.
  const cart = { lines: [], selected: -1, key: newKey(), discount: null };
  let method = "cash", wallet = "bkash", parts = [], submitting = false, lastSale = null, confirmLarge = false;
  let zone = "Asia/Dhaka", cashier = null, signInRequired = false, heldCount = 0;
  let results = [], highlighted = -1, searchTimer = null, searchSeq = 0;

  function say(text, kind) {
    const m = $("message");
    m.textContent = text;
    m.className = kind || "";
  }

  // --- the priced cart: the server prices it with the sale's own core (discounts, VAT, rounding),
  // so what the screen shows is what the sale records. Until its answer comes, the last one shows.
  let quote = null, quoteError = null, quoteSeq = 0, quoting = Promise.resolve();
  const lineBody = (l) => {
    if (l.code) return { code: l.code };
    const b = { sku: l.sku, qty: milliText(l.milli) };
    if (l.override) { b.price = l.override.price; b.price_reason = l.override.reason; }
    if (l.discount) b.discount = l.discount;
    return b;
  };
  const cartLines = () => cart.lines.map(lineBody);
  function cartBody() {
    const b = { lines: cartLines() };
    if (cart.discount) b.discount = cart.discount;
    return b;
  }
  function requote() {
    const seq = ++quoteSeq;
    if (!cart.lines.length) { quote = null; quoting = Promise.resolve(); renderCart(); return quoting; }
    quote = null;  // until the answer: the lines as they are now, at catalog prices
    renderCart();
    quoting = (async () => {
      const r = await api("POST", "/api/quote", cartBody());
      if (seq !== quoteSeq) return;
      quote = r.ok ? r.data.quote : null;
      quoteError = r.ok ? null : r.data.error || String(r.status);
      if (!r.ok) say(quoteError, "bad");  // nothing is recorded by a quote: just why
      renderCart();
    })();
    return quoting;
  }
  // Until the latest quote has come back (a quote asked while waiting included).
  async function priced() { let q; do { q = quoting; await q; } while (q !== quoting); }
  // Before the server's answer, the lines at their (overridden) prices: no discount is worked out here.
  function cartTotal() {
    if (quote) return quote.total;
    return cart.lines.reduce((s, l) => s + lineTotal(l.milli, l.override ? l.override.price : l.price), 0);
  }
  // A discount as the cashier typed it: "10%" or "৳50.00"; an amount travels in whole paisa.
  const discountText = (d) => (d.kind === "percent" ? d.value + "%" : taka(Number(d.value)));
  const quoted = (i) => (quote && quote.lines && quote.lines[i]) || null;
  const pct = (rate) => String(rate).replace(/\.0+$|(\.\d*?)0+$/, "$1") + "%";

  function renderCart() {
    const body = $("cart-lines");
    // A quote's answer can come while the cashier types a quantity: keep that field as typed.
    const typing = document.activeElement && document.activeElement.classList.contains("qty") && body.contains(document.activeElement)
      ? { i: [...body.querySelectorAll("input.qty")].indexOf(document.activeElement), value: document.activeElement.value,
          start: document.activeElement.selectionStart, end: document.activeElement.selectionEnd } : null;
    body.textContent = "";
    cart.lines.forEach((l, i) => {
      const q = quoted(i);
      const tr = document.createElement("tr");
      if (i === cart.selected) tr.className = "selected";
      const name = document.createElement("td");
      name.textContent = l.name;
      const sku = document.createElement("div");
      sku.className = "muted"; sku.textContent = l.sku + (l.weighed ? " · " + l.unit : "") + (l.code ? " · " + t("scale_label") : "");
      name.appendChild(sku);
      if (q && q.vat !== undefined && q.vat !== null) {
        const vat = document.createElement("div");
        vat.className = "muted vat"; vat.textContent = t("vat_part", { rate: pct(q.vat_rate), v: taka(q.vat) });
        name.appendChild(vat);
      }
      if (l.discount) {
        const d = document.createElement("div");
        d.className = "adjust disc";
        d.textContent = t("line_discount") + " " + (q && q.discount ? "−" + taka(q.discount.amount) : discountText(l.discount))
          + " · " + l.discount.reason;
        name.appendChild(d);
      }
      if (l.override) {
        const o = document.createElement("div");
        o.className = "adjust"; o.textContent = t("price_was", { p: taka(l.price) }) + " · " + l.override.reason;
        name.appendChild(o);
      }
      const qty = document.createElement("td");
      qty.className = "num";
      const input = document.createElement("input");
      input.className = "qty"; input.value = milliText(l.milli); input.inputMode = "decimal";
      input.readOnly = !!l.code;  // a scale label's weight is the label's
      input.setAttribute("aria-label", t("qty"));
      input.addEventListener("change", () => setQty(i, input.value));
      input.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); setQty(i, input.value); input.blur(); } });
      qty.appendChild(input);
      const price = document.createElement("td"); price.className = "num";
      price.textContent = taka(q ? q.unit_price : l.override ? l.override.price : l.price);
      const amount = document.createElement("td"); amount.className = "num line-amount";
      amount.textContent = taka(q ? (q.net !== undefined && q.net !== null ? q.net : q.line_total) : lineTotal(l.milli, l.override ? l.override.price : l.price));
      const rm = document.createElement("td");
      const btn = document.createElement("button");
      btn.type = "button"; btn.className = "remove"; btn.textContent = "✕"; btn.title = t("hint_remove");
      btn.addEventListener("click", (e) => { e.stopPropagation(); removeLine(i); });
      rm.appendChild(btn);
      tr.append(name, qty, price, amount, rm);
      tr.addEventListener("click", () => { cart.selected = i; renderCart(); });
      body.appendChild(tr);
    });
    if (typing) {
      const input = body.querySelectorAll("input.qty")[typing.i];
      if (input) { input.value = typing.value; input.focus(); input.setSelectionRange(typing.start, typing.end); }
    }
    $("cart-empty").hidden = cart.lines.length > 0;
    $("total").textContent = taka(cartTotal());
    $("line-count").textContent = cart.lines.length ? cart.lines.length + " " + t("lines") : "";
    const sd = $("sale-discount");
    sd.hidden = !cart.discount;
    if (cart.discount) {
      sd.textContent = t("sale_discount") + " " + (quote && quote.discount ? "−" + taka(quote.discount.amount)
        : discountText(cart.discount)) + " · " + cart.discount.reason;
    }
    $("vat-total").textContent = quote && quote.vat !== undefined && quote.vat !== null ? t("vat_total", { v: taka(quote.vat) }) : "";
    $("hold-label").textContent = cart.lines.length ? t("hold") : t("held_carts", { n: heldCount });
    if (paying()) renderPayment();
  }

  // The quantity is checked by the server with the sale's own rule (pieces whole, weighed goods
  // up to 3 decimals, "1,5" refused with a hint), so the till and the command line agree.
  let qtyChecks = Promise.resolve();
  function setQty(i, text) {
    const l = cart.lines[i];
    if (!l || l.code) return qtyChecks;
    qtyChecks = qtyChecks.then(async () => {
      const r = await api("GET", "/api/quantity?sku=" + encodeURIComponent(l.sku) + "&q=" + encodeURIComponent(text));
      if (r.ok) { l.milli = parseMilli(r.data.qty); confirmLarge = false; say("", ""); requote(); }
      else { say(r.data.error || t("qty") + ": " + text + " ✗", "bad"); renderCart(); }
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
      const held = found.held || {};  // a resumed held line: its price override and discount as held
      cart.lines.push({ sku: p.sku, name: p.name, price: found.price === null || found.price === undefined ? p.price : found.price,
                        unit: p.unit, weighed: p.weighed, milli: found.qty ? parseMilli(found.qty) : 1000, code: found.code || null,
                        override: Number.isInteger(held.price) ? { price: held.price, reason: held.price_reason || "" } : null,
                        discount: held.discount || null });
      cart.selected = cart.lines.length - 1;
    }
    say(t("added", { name: p.name }), "good");
    requote();
  }
  const addProduct = (p) => addFound({ product: p });

  function removeLine(i) {
    if (i < 0 || i >= cart.lines.length) return;
    confirmLarge = false;
    cart.lines.splice(i, 1);
    cart.selected = Math.min(cart.selected, cart.lines.length - 1);
    if (!cart.lines.length) cart.discount = null;
    requote();
  }

  function clearCart() {
    cart.lines = []; cart.selected = -1; cart.key = newKey(); cart.discount = null; confirmLarge = false;
    closePayment();
    requote();
  }

  // --- price override, line and sale discounts: each asks a reason; the server prices them -------
  // kind "price": a new unit price for the selected line; "line": its discount; "sale": the cart's.
  let adjusting = null;
  const adjustOpen = () => !$("adjust-panel").hidden;
  function openAdjust(kind) {
    if (!cart.lines.length) { say(t("empty_cart"), "bad"); return; }
    const l = cart.lines[cart.selected];
    if (kind !== "sale" && !l) return;
    if (kind !== "sale" && l.code) { say(t("label_fixed"), "bad"); return; }
    adjusting = kind;
    const now = kind === "price" ? l.override : kind === "line" ? l.discount : cart.discount;
    $("adjust-title").textContent = kind === "sale" ? t("sale_discount") : (kind === "price" ? t("price_override") : t("line_discount")) + ": " + l.name;
    $("adjust-value-label").textContent = kind === "price" ? t("new_price") : t("discount_value");
    $("adjust-hint").textContent = kind === "price" ? t("price_hint") : t("discount_hint");
    $("adjust-value").value = now ? (kind === "price" ? (now.price / 100).toFixed(2) : now.kind === "percent" ? now.value + "%" : (Number(now.value) / 100).toFixed(2)) : "";
    $("adjust-reason").value = now ? now.reason : "";
    $("adjust-error").textContent = "";
    $("adjust-panel").hidden = false;
    $("adjust-value").focus(); $("adjust-value").select();
  }
  function closeAdjust() {
    $("adjust-panel").hidden = true; adjusting = null;
    if (document.activeElement) document.activeElement.blur();
  }
  async function applyAdjust() {
    const kind = adjusting, text = $("adjust-value").value.trim(), reason = $("adjust-reason").value.trim();
    const l = cart.lines[cart.selected];
    const before = { override: l && l.override, discount: l && l.discount, sale: cart.discount };
    let change = null;  // null: take it off
    if (text) {
      if (!reason) { $("adjust-error").textContent = t("reason_needed"); $("adjust-reason").focus(); return; }
      if (kind === "price") {
        const p = parsePaisa(text);
        if (p === null) { $("adjust-error").textContent = t("bad_amount"); $("adjust-value").focus(); return; }
        change = { price: p, reason };
      } else {
        const m = /^(\d+(?:\.\d{1,2})?)\s*(%?)$/.exec(text);
        if (!m) { $("adjust-error").textContent = t("bad_amount"); $("adjust-value").focus(); return; }
        change = { kind: m[2] ? "percent" : "amount", value: m[2] ? m[1] : String(parsePaisa(m[1])), reason };
      }
    }
    if (kind === "price") l.override = change; else if (kind === "line") l.discount = change; else cart.discount = change;
    await requote(); await priced();
    if (!quote && cart.lines.length && change) {  // refused: say why, keep the dialog open, put it back
      if (l) { l.override = before.override; l.discount = before.discount; }
      cart.discount = before.sale;
      $("adjust-error").textContent = $("message").textContent;
      requote();
      return;
    }
    closeAdjust();
    say(change ? t("adjusted") : t("adjust_removed"), "good");
  }
  $("adjust-go").addEventListener("click", applyAdjust);
  $("adjust-value").addEventListener("keydown", (e) => {
    if (e.key === "Enter") { e.preventDefault(); e.stopPropagation(); if ($("adjust-value").value.trim() && !$("adjust-reason").value.trim()) $("adjust-reason").focus(); else applyAdjust(); }
  });
  $("adjust-reason").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); e.stopPropagation(); applyAdjust(); } });
  document.querySelectorAll("[data-adjust]").forEach((b) => b.addEventListener("click", () => openAdjust(b.dataset.adjust)));

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

  // --- payment: one or more parts (cash, card, bKash or Nagad) that must add up to the total ------
  // The part being typed: cash takes what the customer hands over (the change is what is over the
  // amount still to pay); card and wallet take an amount, the amount still to pay unless typed.
  // Keys pressed while the payment step waits for its price are kept and replayed once it opens,
  // so a fast "F4 then F8" chooses bKash rather than opening the cart's sale discount.
  let opening = null, keptKeys = [];
  function openPayment() {
    if (!opening) {
      opening = preparePayment().finally(() => {
        opening = null;
        const keys = keptKeys; keptKeys = [];
        if (paying()) keys.forEach(replayKey);
      });
    }
    return opening;
  }
  function replayKey(key) {
    const field = document.activeElement;
    if (key.length === 1 && field && field.tagName === "INPUT") {  // typed into the focused amount or id
      field.value += key; field.dispatchEvent(new Event("input", { bubbles: true }));
    } else document.dispatchEvent(new KeyboardEvent("keydown", { key, bubbles: true }));
  }
  async function preparePayment() {
    await scans; await qtyChecks; await priced();
    if (!cart.lines.length) { say(t("empty_cart"), "bad"); return; }
    // No payment against a total the server has not worked out (the till's server said why).
    if (!quote) { say(t("not_priced", { e: quoteError || "-" }), "bad"); return; }
    parts = [];
    $("payment").hidden = false; $("done").hidden = true;
    document.body.classList.add("paying");
    choose("cash");
  }
  function closePayment() {
    $("payment").hidden = true; $("tendered").value = ""; $("pay-amount").value = ""; $("txn-id").value = "";
    $("pay-error").textContent = ""; parts = [];
    document.body.classList.remove("paying");
    // Focus back on the page, so the scanner's next digits start the next line.
    if (document.activeElement && document.activeElement !== document.body) document.activeElement.blur();
  }
  const paying = () => !$("payment").hidden;
  const paidSoFar = () => parts.reduce((s, p) => s + p.amount, 0);
  const stillToPay = () => cartTotal() - paidSoFar();

  function choose(m) {
    method = m;
    document.querySelectorAll(".method").forEach((b) => b.classList.toggle("on", b.dataset.method === m));
    document.querySelectorAll(".wallet").forEach((b) => b.classList.toggle("on", b.dataset.wallet === wallet));
    $("cash-box").hidden = m !== "cash";
    $("amount-box").hidden = m === "cash";
    $("wallet-box").hidden = $("txn-box").hidden = m !== "mobile";
    $("pay-error").textContent = "";
    if (m === "cash") $("tendered").focus();
    else {
      $("pay-amount").value = (stillToPay() / 100).toFixed(2);
      if (m === "mobile") $("txn-id").focus(); else { $("pay-amount").focus(); $("pay-amount").select(); }
    }
    renderPayment();
  }
  // F8 chooses the mobile wallet; F8 again switches between bKash and Nagad.
  function chooseMobile() {
    if (method === "mobile") wallet = wallet === "bkash" ? "nagad" : "bkash";
    choose("mobile");
  }

  // What the part being typed would pay now: {amount, tendered, change}, or {error}.
  function currentPart() {
    const left = stillToPay();
    if (method === "cash") {
      const text = $("tendered").value.trim();
      if (!text) return { amount: left, tendered: null, change: 0 };
      const tendered = parsePaisa(text);
      if (tendered === null) return { error: t("bad_amount") };
      return tendered >= left ? { amount: left, tendered, change: tendered - left } : { amount: tendered, tendered, change: 0 };
    }
    const text = $("pay-amount").value.trim();
    const amount = text ? parsePaisa(text) : left;
    if (amount === null) return { error: t("bad_amount") };
    if (amount > left) return { error: t("over_total", { v: taka(left) }) };
    return { amount, tendered: null, change: 0 };
  }

  function renderPayment() {
    const left = stillToPay(), part = currentPart();
    $("remaining").textContent = taka(left);
    $("change").textContent = taka(part.change || 0);
    const list = $("parts");
    list.textContent = "";
    parts.forEach((p, i) => {
      const li = document.createElement("li");
      const label = document.createElement("span");
      label.textContent = partLabel(p);
      const amount = document.createElement("b");
      amount.textContent = taka(p.amount);
      const rm = document.createElement("button");
      rm.type = "button"; rm.className = "remove"; rm.textContent = "✕"; rm.title = t("remove_part");
      rm.addEventListener("click", () => { parts.splice(i, 1); renderPayment(); });
      li.append(label, amount, rm);
      list.appendChild(li);
    });
    const covers = !part.error && part.amount === left && left >= 0;
    $("confirm").disabled = !covers || submitting;
    $("add-part").hidden = covers || !!part.error || part.amount <= 0;
    if (part.error) $("pay-error").textContent = part.error;
    else if ($("pay-error").dataset.sticky !== "1") $("pay-error").textContent = "";
  }
  function partLabel(p) {
    if (p.method === "mobile") return (p.wallet === "nagad" ? "Nagad" : "bKash") + " · " + p.txn_id;
    if (p.method === "cash" && p.tendered) return t("cash") + " · " + t("tendered_short") + " " + taka(p.tendered);
    return t(p.method);
  }
  function payError(text, field) {
    $("pay-error").textContent = text; $("pay-error").dataset.sticky = "1";
    if (field) $(field).focus();
  }

  // The part being typed, as the sale's payments list takes it; null (and a message) when it cannot be.
  function takePart() {
    const part = currentPart();
    if (part.error) { payError(part.error); return null; }
    const p = { method, amount: part.amount };
    if (method === "cash" && part.tendered !== null) p.tendered = part.tendered;
    if (method === "mobile") {
      const txn = $("txn-id").value.trim();
      if (!txn) { payError(t("txn_needed"), "txn-id"); return null; }
      p.wallet = wallet; p.txn_id = txn;
    }
    return p;
  }

  function addPart() {
    const p = takePart();
    if (!p || p.amount <= 0) return;
    parts.push(p);
    $("tendered").value = ""; $("txn-id").value = "";
    $("pay-error").dataset.sticky = "";
    choose(method === "cash" ? "card" : method);
  }

  function addNote(n) {
    if (method !== "cash") choose("cash");
    const now = parsePaisa($("tendered").value) || 0;
    $("tendered").value = ((now + n * 100) / 100).toFixed(2);
    renderPayment();
  }

  // Enter: records the sale when the payments add up, else adds the part typed so far.
  function enterPayment() {
    const part = currentPart();
    if (!part.error && part.amount !== stillToPay()) { addPart(); return; }
    confirmSale();
  }

  // A second Enter or click while the first is on its way does nothing; a retry after a lost
  // answer sends the same cart key, and the server answers with the sale it recorded first.
  async function confirmSale() {
    if (submitting || !paying()) return;
    submitting = true;
    $("confirm").disabled = true;
    try {
      await scans; await qtyChecks; await priced();
      if (!cart.lines.length) { say(t("empty_cart"), "bad"); return; }
      const last = takePart();
      if (!last) return;
      if (last.amount !== stillToPay()) { payError(t("not_adding_up", { v: taka(stillToPay()) })); return; }
      const payments = last.amount > 0 || !parts.length ? [...parts, last] : [...parts];
      say(t("sending"), "");
      const body = { key: cart.key, ...cartBody(), payments, confirmed: confirmLarge };
      const r = await api("POST", "/api/sales", body);
      if (r.status === 409 && r.data.confirm) {  // a very large quantity: Enter again records it as it is
        confirmLarge = true;
        say(r.data.error + " · " + t("confirm_again"), "bad");
        return;
      }
      if (!r.ok) { say(t("failed", { e: r.data.error || r.status }), "bad"); return; }
      // Only now, with the commit confirmed by the server, does the screen say "recorded".
      lastSale = r.data.sale;
      const change = lastSale.change || 0;
      clearCart();
      $("done").hidden = false;
      $("done-title").textContent = t("recorded", { n: lastSale.number }) + " · " + taka(lastSale.total);
      $("done-change").textContent = taka(change);
      say(t("recorded", { n: lastSale.number }), "good");
      refreshStatus();
    } catch (e) {
      say(t("failed", { e: e.message }), "bad");  // the same key is sent again on a retry
    } finally {
      submitting = false;
      if (paying()) renderPayment();
    }
  }

  function openReceipt(number, reprint) {
    const url = "/receipt?number=" + encodeURIComponent(number) + "&paper=80&lang=" + lang + (reprint ? "&reprint=1" : "");
    window.open(url, "receipt", "width=420,height=700");
  }

  $("pay").addEventListener("click", openPayment);
  $("confirm").addEventListener("click", confirmSale);
  $("add-part").addEventListener("click", addPart);
  $("print-last").addEventListener("click", () => lastSale && openReceipt(lastSale.number));
  document.querySelectorAll(".method").forEach((b) => b.addEventListener("click", () => choose(b.dataset.method)));
  document.querySelectorAll(".wallet").forEach((b) => b.addEventListener("click", () => { wallet = b.dataset.wallet; choose("mobile"); }));
  document.querySelectorAll(".note").forEach((b) => b.addEventListener("click", () => addNote(Number(b.dataset.note))));
  ["tendered", "pay-amount", "txn-id"].forEach((id) => $(id).addEventListener("input", () => { $("pay-error").dataset.sticky = ""; renderPayment(); }));

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

  // The panel opens at once, so its keys (S, a receipt number) work while the list is read.
  async function openSales() {
    if (!salesOpen()) { salePick = 0; $("sales-panel").hidden = false; $("void-box").hidden = true; }
    const r = await api("GET", "/api/sales?limit=30");
    sales = r.ok ? r.data.sales : [];
    salePick = Math.max(0, Math.min(salePick, sales.length - 1));
    renderSales();
  }
  function closeSales() { $("sales-panel").hidden = true; $("void-box").hidden = true; }

  function renderSales() {
    const body = $("sales-rows");
    body.textContent = "";
    sales.forEach((s, i) => {
      const tr = document.createElement("tr");
      if (i === salePick) tr.className = "selected";
      const note = s.voids ? t("void_of", { v: s.voids }) : s.refunds ? t("refund_of_short", { v: s.refunds })
        : s.voided_by ? t("voided_by", { v: s.voided_by }) : "";
      const pays = (s.payments || []).map((p) => (p.method === "mobile" ? (p.wallet === "nagad" ? "Nagad" : "bKash") : t(p.method))).join(" + ");
      const cells = [String(s.number), dhaka.format(new Date(s.recorded_at)), t("kind_" + s.kind) + (note ? " · " + note : "") + (s.reason ? " (" + s.reason + ")" : "") + (s.cashier ? " · " + s.cashier : ""),
        taka(s.total), pays || t(s.payment), t(s.state)];
      cells.forEach((c, j) => { const td = document.createElement("td"); td.textContent = c; if (j === 0 || j === 3) td.className = "num"; tr.appendChild(td); });
      const td = document.createElement("td");
      const rp = document.createElement("button"); rp.type = "button"; rp.className = "small"; rp.textContent = t("reprint");
      rp.addEventListener("click", () => openReceipt(s.number, true));
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
      $("void-reason").blur(); $("void-box").hidden = true;
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

  // --- refund: lines of an earlier sale come back, at most what is still refundable ------------
  // The sale is picked in the sales list (T) or by its receipt number, typed or scanned.
  let refund = null;  // {sale, qty: [milli per line], pick, method, wallet, key}
  const refundOpen = () => !$("refund-panel").hidden;
  const refundableMilli = (l) => parseMilli(l.refundable !== undefined && l.refundable !== null ? l.refundable : l.qty) || 0;
  async function openRefund(number) {
    const r = await api("GET", "/api/sales/" + encodeURIComponent(String(number).trim()));
    if (!r.ok) { say(t("failed", { e: r.data.error || r.status }), "bad"); return; }
    const sale = r.data.sale;
    if (sale.kind !== "sale" || sale.voided_by) { say(t("not_refundable", { n: sale.number }), "bad"); return; }
    if (!sale.lines.some((l) => refundableMilli(l) > 0)) { say(t("nothing_refundable", { n: sale.number }), "bad"); return; }
    closeSales();
    refund = { sale, qty: sale.lines.map(() => 0), total: 0, quoting: Promise.resolve(), pick: 0, method: "cash", wallet: "bkash", key: newKey() };
    $("refund-title").textContent = t("refund_of", { n: sale.number });
    $("refund-reason").value = ""; $("refund-txn").value = ""; $("refund-error").textContent = "";
    $("refund-panel").hidden = false;
    if (document.activeElement) document.activeElement.blur();
    chooseRefundMethod("cash");
  }
  function closeRefund() { $("refund-panel").hidden = true; refund = null; if (document.activeElement) document.activeElement.blur(); }
  function chooseRefundMethod(m) {
    if (m === "mobile" && refund.method === "mobile") refund.wallet = refund.wallet === "bkash" ? "nagad" : "bkash";
    refund.method = m;
    document.querySelectorAll(".refund-method").forEach((b) => b.classList.toggle("on", b.dataset.method === m));
    $("refund-txn-box").hidden = m !== "mobile";
    $("refund-wallet").textContent = refund.wallet === "nagad" ? "Nagad" : "bKash";
    renderRefund();
  }
  // What the returns pay back: the server works it out by the refund's own rule (POST
  // .../refund/quote), so the amount shown is the amount the refund records.
  let refundQuoteSeq = 0;
  async function requoteRefund() {
    const seq = ++refundQuoteSeq, r0 = refund;
    const returns = refundReturns();
    if (!returns.length) { refund.total = 0; renderRefund(); return; }
    refund.total = null; renderRefund();
    const r = await api("POST", "/api/sales/" + encodeURIComponent(r0.sale.number) + "/refund/quote", { returns });
    if (seq !== refundQuoteSeq || refund !== r0) return;  // a later change asked again
    refund.total = r.ok ? r.data.quote.total : null;
    if (!r.ok) $("refund-error").textContent = r.data.error || String(r.status);
    renderRefund();
  }
  const refundReturns = () => refund.qty.map((m, i) => ({ line: i + 1, qty: milliText(m) })).filter((x, i) => refund.qty[i] > 0);
  function renderRefund() {
    const body = $("refund-rows");
    body.textContent = "";
    refund.sale.lines.forEach((l, i) => {
      const tr = document.createElement("tr");
      if (i === refund.pick) tr.className = "selected";
      const cells = [String(i + 1), l.name, l.qty, milliText(refundableMilli(l))];
      cells.forEach((c, j) => { const td = document.createElement("td"); td.textContent = c; if (j !== 1) td.className = "num"; tr.appendChild(td); });
      const td = document.createElement("td"); td.className = "num";
      const input = document.createElement("input");
      input.className = "qty refund-qty"; input.value = milliText(refund.qty[i]); input.inputMode = "decimal";
      input.setAttribute("aria-label", t("returning"));
      input.addEventListener("change", () => setRefundQty(i, parseMilli(input.value)));
      input.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); e.stopPropagation(); setRefundQty(i, parseMilli(input.value)); input.blur(); } });
      td.appendChild(input);
      tr.appendChild(td);
      tr.addEventListener("click", () => { refund.pick = i; renderRefund(); });
      body.appendChild(tr);
    });
    $("refund-total").textContent = refund.total === null ? "…" : taka(refund.total);
    $("refund-go").disabled = submitting || !(refund.total > 0);
  }
  function setRefundQty(i, milli) {
    const most = refundableMilli(refund.sale.lines[i]);
    if (milli === null || milli < 0) { $("refund-error").textContent = t("bad_amount"); renderRefund(); return; }
    if (milli > most) { $("refund-error").textContent = t("refund_too_many", { n: milliText(most) }); milli = most; }
    else $("refund-error").textContent = "";
    refund.qty[i] = milli;
    refund.quoting = requoteRefund();
  }
  async function confirmRefund() {
    if (!refund || submitting) return;
    await refund.quoting;  // the amount for the quantities as typed
    if (!refund || submitting) return;
    if (!(refund.total > 0)) { $("refund-error").textContent = t("refund_choose"); return; }
    const reason = $("refund-reason").value.trim();
    if (!reason) { $("refund-error").textContent = t("reason_needed"); $("refund-reason").focus(); return; }
    const payment = { method: refund.method };  // its amount: what the server works out for the returns
    if (refund.method === "mobile") {
      const txn = $("refund-txn").value.trim();
      if (!txn) { $("refund-error").textContent = t("txn_needed"); $("refund-txn").focus(); return; }
      payment.wallet = refund.wallet; payment.txn_id = txn;
    }
    const returns = refundReturns();
    submitting = true; renderRefund();
    try {
      const r = await api("POST", "/api/sales/" + encodeURIComponent(refund.sale.number) + "/refund",
                          { key: refund.key, returns, payments: [payment], reason });
      if (!r.ok) { $("refund-error").textContent = t("failed", { e: r.data.error || r.status }); return; }
      const done = r.data.sale;
      const of = refund.sale.number;
      closeRefund();
      lastSale = done;
      say(t("refunded", { n: of, v: done.number, a: taka(Math.abs(done.total)) }), "good");
      refreshStatus();
    } finally { submitting = false; if (refund) renderRefund(); }
  }
  $("refund-go").addEventListener("click", confirmRefund);
  document.querySelectorAll(".refund-method").forEach((b) => b.addEventListener("click", () => chooseRefundMethod(b.dataset.method)));
  ["refund-reason", "refund-txn"].forEach((id) => $(id).addEventListener("keydown", (e) => {
    if (e.key === "Enter") { e.preventDefault(); e.stopPropagation(); confirmRefund(); }
    else if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); $(id).blur(); }
  }));
  function refundKey(e) {
    const k = e.key;
    const fkeys = { F6: () => chooseRefundMethod("cash"), F7: () => chooseRefundMethod("card"), F8: () => chooseRefundMethod("mobile") };
    if (fkeys[k]) { e.preventDefault(); fkeys[k](); return; }
    if (k === "Escape") { e.preventDefault(); closeRefund(); return; }
    if (inField(e.target)) return;
    const l = refund.sale.lines[refund.pick], step = l && l.unit && /^(kg|g|l|litre|liter|ml)$/i.test(l.unit) ? 100 : 1000;
    if (k === "ArrowDown") { e.preventDefault(); refund.pick = Math.min(refund.sale.lines.length - 1, refund.pick + 1); renderRefund(); }
    else if (k === "ArrowUp") { e.preventDefault(); refund.pick = Math.max(0, refund.pick - 1); renderRefund(); }
    else if (k === "+") { e.preventDefault(); setRefundQty(refund.pick, refund.qty[refund.pick] + step); }
    else if (k === "-") { e.preventDefault(); setRefundQty(refund.pick, Math.max(0, refund.qty[refund.pick] - step)); }
    else if (k === "a" || k === "A") { e.preventDefault(); setRefundQty(refund.pick, refundableMilli(l)); }
    else if (k === "Enter") { e.preventDefault(); if ($("refund-reason").value.trim()) confirmRefund(); else $("refund-reason").focus(); }
  }
  $("sale-find").addEventListener("keydown", (e) => {
    if (e.key === "Enter") { e.preventDefault(); e.stopPropagation(); const n = $("sale-find").value; $("sale-find").value = ""; if (n.trim()) openRefund(n); }
    else if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); $("sale-find").value = ""; $("sale-find").blur(); }
  });
  $("sale-find-go").addEventListener("click", () => { const n = $("sale-find").value; $("sale-find").value = ""; if (n.trim()) openRefund(n); });

  // --- shift: open with the counted float, close with the counted cash: the Z report ------------
  let shift = null, lastZ = null;
  const shiftOpen = () => !$("shift-panel").hidden;
  async function openShiftPanel() {
    closeSales();
    const r = await api("GET", "/api/shift");
    if (!r.ok) { say(t("failed", { e: r.data.error || r.status }), "bad"); return; }
    shift = r.data.shift || null;
    $("shift-panel").hidden = false; $("z-report").hidden = true; $("z-print").hidden = true;
    $("shift-panel").classList.remove("showing-z");
    $("shift-error").textContent = ""; $("shift-cash").value = "";
    renderShift();
    $("shift-cash").focus();
  }
  function renderShift() {
    const when = (s) => dhaka.format(new Date(s));
    $("shift-state").textContent = shift ? t("shift_is_open", { who: shift.cashier || "-", at: when(shift.opened_at), f: taka(shift.opening_float) })
      : t("shift_closed");
    $("shift-cash-label").textContent = shift ? t("shift_counted") : t("shift_float");
    $("shift-go-label").textContent = shift ? t("shift_close") : t("shift_open");
  }
  function closeShiftPanel() { $("shift-panel").hidden = true; if (document.activeElement) document.activeElement.blur(); }
  async function shiftGo() {
    if (submitting) return;
    const paisa = parsePaisa($("shift-cash").value);
    if (paisa === null) { $("shift-error").textContent = t("bad_amount"); $("shift-cash").focus(); return; }
    submitting = true;
    try {
      const r = shift ? await api("POST", "/api/shift/close", { counted: paisa }) : await api("POST", "/api/shift/open", { float: paisa });
      if (!r.ok) { $("shift-error").textContent = t("failed", { e: r.data.error || r.status }); return; }
      $("shift-error").textContent = "";
      if (shift) {
        lastZ = r.data.report;
        shift = null;
        showZ(lastZ);
        say(t("shift_closed_done"), "good");
      } else {
        shift = r.data.shift;
        say(t("shift_opened", { f: taka(paisa) }), "good");
        closeShiftPanel();
      }
      refreshStatus();
    } finally { submitting = false; }
  }
  function showZ(z) {
    const box = $("z-report");
    box.textContent = "";
    const h = document.createElement("h3"); h.textContent = t("z_title") + (z.number ? " · #" + z.number : "");
    const cols = document.createElement("div"); cols.className = "z-cols";
    let table = document.createElement("table");
    cols.appendChild(table);
    window.zReportRows(z, t, taka, (s) => (s ? dhaka.format(new Date(s)) : "-")).forEach((row) => {
      if (row === null) { table = document.createElement("table"); cols.appendChild(table); return; }
      const tr = document.createElement("tr");
      const a = document.createElement("td"), b = document.createElement("td");
      a.textContent = row[0]; b.textContent = row[1]; b.className = "num";
      tr.append(a, b); table.appendChild(tr);
    });
    box.append(h, cols);
    $("shift-panel").classList.add("showing-z");
    box.hidden = false; $("z-print").hidden = false;
    $("shift-cash").value = "";
    if (document.activeElement) document.activeElement.blur();
    renderShift();
  }
  function printZ() { if (lastZ) window.open("/receipt?z=" + encodeURIComponent(lastZ.shift_id) + "&paper=80&lang=" + lang, "receipt", "width=420,height=700"); }
  $("shift-go").addEventListener("click", shiftGo);
  $("z-print").addEventListener("click", printZ);
  $("shift-cash").addEventListener("keydown", (e) => {
    if (e.key === "Enter") { e.preventDefault(); e.stopPropagation(); shiftGo(); }
  });
  function shiftKey(e) {
    if (e.key === "Escape") { e.preventDefault(); closeShiftPanel(); return; }
    if (e.ctrlKey && (e.key === "p" || e.key === "P")) { e.preventDefault(); printZ(); }
  }

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
    $("sync-error").textContent = s.last_error ? errorWords(s.last_error_code, s.last_error) : t("none");
    $("sync-error-wrap").classList.toggle("bad", !!s.last_error);
    $("sync-message").textContent = syncWords(s.sync_note, s.sync_message || "");  // what the background sync does
  }
  // The server gives a code and its numbers; the page words them in the till's language. An
  // error whose code has no words here is shown as the server wrote it (in English).
  const errorWords = (code, text) => (code && window.TILL_WORDS.en["err_" + code] ? t("err_" + code) : text);
  function syncWords(note, text) {
    if (!note) return text;
    let words;
    if (note.code === "sending") return t("sync_sending");
    if (note.code === "unreachable") return t("sync_unreachable", { s: note.retry_in });
    if (note.code === "pushed") words = t("sync_done", { n: note.count });
    else if (note.code === "done") words = t("sync_done_plain");
    else if (note.code === "busy") words = t("sync_busy");
    else if (note.error && window.TILL_WORDS.en["err_" + note.error]) words = t("err_" + note.error);
    else return text;  // in English, as the server said it
    return note.retry_in !== undefined && note.retry_in !== null ? t("sync_next", { m: words, s: note.retry_in }) : words;
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
    const r = await api("POST", "/api/held", cartBody());  // lines with their overrides and discounts, and the sale's
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
      cart.discount = r.data.discount || null;  // the sale discount as held, priced again with the lines
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
    if (!r.ok) {
      const d = r.data;
      $("signin-error").textContent = d.locked ? t("signin_locked", { name: d.name, at: dhaka.format(new Date(d.locked_until)) })
        : Number.isInteger(d.left) ? t("signin_wrong", { n: d.left }) : d.error || String(r.status);
      $("signin-pin").focus();
      return;
    }
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
    if (opening && !e.ctrlKey && !e.altKey && !e.metaKey) { e.preventDefault(); if (k !== "F4") keptKeys.push(k); return; }
    if (heldOpen()) {
      e.preventDefault();
      if (k === "Escape" || k === "Insert") closeHeld();
      else if (k === "ArrowDown") { heldPick = Math.min(held.length - 1, heldPick + 1); renderHeld(); }
      else if (k === "ArrowUp") { heldPick = Math.max(0, heldPick - 1); renderHeld(); }
      else if (k === "Enter") resumeHeld();
      return;
    }
    if (adjustOpen()) {  // its fields take Enter themselves; Esc leaves the cart as it was
      if (k === "Escape") { e.preventDefault(); closeAdjust(); }
      return;
    }
    if (refundOpen()) { refundKey(e); return; }
    if (shiftOpen()) { shiftKey(e); return; }
    if (k === "Insert" && !paying() && !salesOpen()) { e.preventDefault(); holdOrList(); return; }
    const fkeys = {
      F1: () => $("lang").click(), F2: () => $("search").focus(), F3: () => (salesOpen() ? closeSales() : openSales()),
      F4: () => (paying() ? confirmSale() : openPayment()), F5: syncNow,
      F6: () => (paying() ? choose("cash") : openAdjust("price")), F7: () => (paying() ? choose("card") : openAdjust("line")), F8: () => (paying() ? chooseMobile() : openAdjust("sale")),
      F9: () => paying() && addNote(100), F10: () => paying() && addNote(500), F11: () => paying() && addNote(1000),
    };
    if (fkeys[k]) { e.preventDefault(); fkeys[k](); return; }
    if (e.ctrlKey && (k === "p" || k === "P")) { e.preventDefault(); if (lastSale) openReceipt(lastSale.number); return; }
    if (salesOpen()) {
      if (inField(e.target)) return;
      if (k === "Escape") { e.preventDefault(); closeSales(); }
      else if (k === "ArrowDown") { e.preventDefault(); salePick = Math.min(sales.length - 1, salePick + 1); renderSales(); }
      else if (k === "ArrowUp") { e.preventDefault(); salePick = Math.max(0, salePick - 1); renderSales(); }
      else if (k === "v" || k === "V") { e.preventDefault(); askVoid(); }
      else if ((k === "r" || k === "R") && sales[salePick]) { e.preventDefault(); openReceipt(sales[salePick].number, true); }
      else if ((k === "t" || k === "T") && sales[salePick]) { e.preventDefault(); openRefund(sales[salePick].number); }
      else if (k === "s" || k === "S") { e.preventDefault(); openShiftPanel(); }
      else if (/^\d$/.test(k)) { e.preventDefault(); $("sale-find").focus(); $("sale-find").value += k; }  // a receipt number, typed or scanned
      return;
    }
    if (paying()) {
      if (k === "Enter") { e.preventDefault(); if (!e.repeat) enterPayment(); return; }
      if (k === "Escape" && confirmLarge) { e.preventDefault(); confirmLarge = false; closePayment(); say("", ""); return; }
      if (k === "Escape") { e.preventDefault(); closePayment(); return; }
      if (inField(e.target)) return;
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
