// The receipt of one sale, for 80 mm or 58 mm paper (?number=N&paper=80|58&lang=en|bn), in the
// order of a Mushak-6.3 invoice: shop, BIN, branch and till, number, date and time (with its
// zone), cashier, the lines with quantity, unit price, VAT rate and amount, discounts, total,
// VAT total, payments with cash tendered and change. Every amount comes from the stored sale.
"use strict";
(async function () {
  const q = new URLSearchParams(location.search);
  const lang = q.get("lang") === "bn" ? "bn" : "en";
  const W = { en: { total: "Total", payment: "Payment", tendered: "Tendered", change: "Change", thanks: "Thank you",
                    sale: "Sale", void: "VOID of sale", refund: "REFUND of sale", receipt: "Receipt", bin: "BIN",
                    cashier: "Cashier", times: "Times in", vat: "VAT", vat_total: "VAT included", till: "Till",
                    discount: "Discount", sale_discount: "Sale discount", price_changed: "price changed",
                    txn: "TrxID", reprint: "Reprint" },
              bn: { total: "মোট", payment: "পরিশোধ", tendered: "প্রদত্ত", change: "ফেরত", thanks: "ধন্যবাদ",
                    sale: "বিক্রয়", void: "বাতিল, বিক্রয়", refund: "ফেরত, বিক্রয়", receipt: "রসিদ", bin: "বিআইএন",
                    cashier: "ক্যাশিয়ার", times: "সময়", vat: "ভ্যাট", vat_total: "মোট ভ্যাট (অন্তর্ভুক্ত)", till: "টিল",
                    discount: "ছাড়", sale_discount: "বিক্রয় ছাড়", price_changed: "দাম বদলানো",
                    txn: "TrxID", reprint: "পুনর্মুদ্রণ" } }[lang];
  const words = window.TILL_WORDS[lang];
  document.documentElement.lang = lang;
  if (q.get("paper") === "58") document.getElementById("paper").href = "/static/receipt-58.css";
  const taka = (p) => (p < 0 ? "-" : "") + "৳" + Math.floor(Math.abs(p) / 100).toLocaleString("en-IN") + "." + String(Math.abs(p) % 100).padStart(2, "0");
  const pct = (rate) => String(rate).replace(/\.0+$|(\.\d*?)0+$/, "$1") + "%";
  const el = (id) => document.getElementById(id);
  const set = (id, text) => { el(id).textContent = text; };
  const has = (v) => v !== undefined && v !== null;
  function row(parent, left, right, cls) {
    const div = document.createElement("div");
    div.className = "row" + (cls ? " " + cls : "");
    const a = document.createElement("span"), b = document.createElement("span");
    a.textContent = left; b.textContent = right;
    div.append(a, b);
    parent.appendChild(div);
  }
  function finish() {
    el("print").addEventListener("click", () => window.print());
    for (const paper of ["80", "58"]) {
      const other = new URLSearchParams(q);
      other.set("paper", paper);
      el("paper-" + paper).href = "/receipt?" + other.toString();
    }
    document.body.dataset.ready = "1";
    if (q.get("print") === "1") window.print();
  }
  if (q.has("z")) { await zReport(q.get("z")); finish(); return; }
  const r = await fetch("/api/sales/" + encodeURIComponent(q.get("number") || ""));
  if (!r.ok) { set("r-title", "no such sale"); return; }
  const { sale, branch, shop } = await r.json();
  const zone = (shop && shop.time_zone) || "Asia/Dhaka";
  set("r-shop", (shop && shop.name) || branch || "");
  if (shop && shop.bin) { el("r-bin").hidden = false; set("r-bin", W.bin + ": " + shop.bin); }
  const where = [shop && shop.name ? branch : null, shop && shop.till ? W.till + " " + shop.till : null].filter(Boolean);
  set("r-branch", where.join(" · "));
  set("r-title", W.receipt + (q.get("reprint") === "1" ? " · " + W.reprint : ""));
  const kind = sale.kind === "void" ? W.void + " " + sale.voids + " · " : sale.kind === "refund" ? W.refund + " " + sale.refunds + " · " : W.sale + " ";
  set("r-number", kind + "#" + sale.number);
  set("r-time", new Intl.DateTimeFormat("en-GB", { timeZone: zone, dateStyle: "short", timeStyle: "short" }).format(new Date(sale.recorded_at)));
  set("r-zone", W.times + " " + zone);
  if (sale.cashier) { el("r-cashier").hidden = false; set("r-cashier", W.cashier + ": " + sale.cashier); }
  const table = el("r-lines");
  for (const l of sale.lines) {
    const tr = document.createElement("tr");
    const name = document.createElement("td");
    name.textContent = l.name;
    const detail = document.createElement("div");
    detail.className = "detail";
    detail.textContent = l.qty + " × " + taka(l.unit_price) + (has(l.vat_rate) ? " · " + W.vat + " " + pct(l.vat_rate) + " " + taka(l.vat || 0) : "");
    name.appendChild(detail);
    if (has(l.list_price) && l.list_price !== l.unit_price) {
      const o = document.createElement("div");
      o.className = "detail"; o.textContent = W.price_changed + " (" + taka(l.list_price) + ")" + (l.price_reason ? ": " + l.price_reason : "");
      name.appendChild(o);
    }
    if (l.discount) {
      const d = document.createElement("div");
      d.className = "detail"; d.textContent = W.discount + " −" + taka(l.discount.amount) + (l.discount.reason ? ": " + l.discount.reason : "");
      name.appendChild(d);
    }
    const amount = document.createElement("td");
    amount.className = "num";
    amount.textContent = taka(has(l.net) ? l.net : l.line_total);
    tr.append(name, amount);
    table.appendChild(tr);
  }
  if (sale.discount) row(el("r-discounts"), W.sale_discount + (sale.discount.reason ? ": " + sale.discount.reason : ""), "−" + taka(sale.discount.amount));
  set("r-total-label", W.total); set("r-total", taka(sale.total));
  const vat = has(sale.vat) ? sale.vat : sale.lines.some((l) => has(l.vat)) ? sale.lines.reduce((s, l) => s + (l.vat || 0), 0) : null;
  if (vat !== null) { el("r-vat-row").hidden = false; set("r-vat-label", W.vat_total); set("r-vat", taka(vat)); }
  // Payments as the sale stored them (a sale from before split payments: its one method).
  const box = el("r-payments");
  let change = 0;
  const payments = sale.payments || [];
  for (const p of payments) {
    const label = p.method === "mobile" ? (p.wallet === "nagad" ? "Nagad" : "bKash") : (words[p.method] || p.method);
    row(box, W.payment + ": " + label, taka(p.amount));
    if (p.txn_id) row(box, "  " + W.txn, p.txn_id, "small");
    if (p.method === "cash" && Number.isInteger(p.tendered) && p.tendered >= p.amount) {
      row(box, "  " + W.tendered, taka(p.tendered), "small");
      change += has(p.change) ? p.change : p.tendered - p.amount;
    }
  }
  if (has(sale.change)) change = sale.change;
  if (change > 0) { el("r-change-row").hidden = false; set("r-change-label", W.change); set("r-change", taka(change)); }
  set("r-thanks", W.thanks);
  finish();

  // A shift's Z report, as it was when the shift closed (a reprint shows the same figures).
  async function zReport(id) {
    el("receipt").hidden = true;
    el("zprint").hidden = false;
    const t = (key, vars) => {
      let s = words[key] || window.TILL_WORDS.en[key] || key;
      for (const [k, v] of Object.entries(vars || {})) s = s.replace("{" + k + "}", v);
      return s;
    };
    const res = await fetch("/api/shift/" + encodeURIComponent(id) + "/z");
    if (!res.ok) { set("z-title", "no such Z report"); return; }
    // The header as on the receipts: the Z answer carries the shop and the branch.
    const data = await res.json();
    const z = data.report, shop = data.shop || {};
    const zone = shop.time_zone || "Asia/Dhaka";
    const fmt = new Intl.DateTimeFormat("en-GB", { timeZone: zone, dateStyle: "short", timeStyle: "short" });
    set("z-shop", shop.name || data.branch || "");
    if (shop.bin) { el("z-bin").hidden = false; set("z-bin", W.bin + ": " + shop.bin); }
    set("z-branch", shop.name ? data.branch || "" : "");
    set("z-title", t("z_title") + (z.number ? " · #" + z.number : ""));
    set("z-zone", W.times + " " + zone);
    const table = el("z-rows");
    for (const row of window.zReportRows(z, t, taka, (s) => (s ? fmt.format(new Date(s)) : "-"))) {
      const tr = document.createElement("tr");
      if (row === null) {
        const td = document.createElement("td");
        td.colSpan = 2; tr.className = "rule"; tr.appendChild(td); table.appendChild(tr); continue;
      }
      const [label, value] = row;
      const a = document.createElement("td"), b = document.createElement("td");
      a.textContent = label; b.textContent = value; b.className = "num";
      tr.append(a, b); table.appendChild(tr);
    }
  }
})();
