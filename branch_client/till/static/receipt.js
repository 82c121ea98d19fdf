// The receipt of one sale, for 80 mm or 58 mm paper (?number=N&paper=80|58&lang=en|bn&tendered=PAISA).
"use strict";
(async function () {
  const q = new URLSearchParams(location.search);
  const lang = q.get("lang") === "bn" ? "bn" : "en";
  const W = { en: { total: "Total", payment: "Payment", tendered: "Tendered", change: "Change", thanks: "Thank you",
                    sale: "Sale", void: "VOID of sale", receipt: "Receipt", bin: "BIN", cashier: "Cashier",
                    times: "Times in" },
              bn: { total: "মোট", payment: "পরিশোধ", tendered: "প্রদত্ত", change: "ফেরত", thanks: "ধন্যবাদ",
                    sale: "বিক্রয়", void: "বাতিল, বিক্রয়", receipt: "রসিদ", bin: "বিআইএন", cashier: "ক্যাশিয়ার",
                    times: "সময়" } }[lang];
  const words = window.TILL_WORDS[lang];
  document.documentElement.lang = lang;
  if (q.get("paper") === "58") document.getElementById("paper").href = "/static/receipt-58.css";
  const taka = (p) => (p < 0 ? "-" : "") + "৳" + Math.floor(Math.abs(p) / 100).toLocaleString("en-IN") + "." + String(Math.abs(p) % 100).padStart(2, "0");
  const set = (id, text) => { document.getElementById(id).textContent = text; };
  const r = await fetch("/api/sales/" + encodeURIComponent(q.get("number") || ""));
  if (!r.ok) { set("r-title", "no such sale"); return; }
  const { sale, branch, shop } = await r.json();
  const zone = (shop && shop.time_zone) || "Asia/Dhaka";
  set("r-shop", (shop && shop.name) || branch || "");
  set("r-branch", shop && shop.name ? branch || "" : "");
  if (shop && shop.bin) { document.getElementById("r-bin").hidden = false; set("r-bin", W.bin + ": " + shop.bin); }
  set("r-title", W.receipt);
  set("r-number", (sale.kind === "void" ? W.void + " " + sale.voids + " · " : W.sale + " ") + "#" + sale.number);
  set("r-time", new Intl.DateTimeFormat("en-GB", { timeZone: zone, dateStyle: "short", timeStyle: "short" }).format(new Date(sale.recorded_at)));
  set("r-zone", W.times + " " + zone);
  if (sale.cashier) { document.getElementById("r-cashier").hidden = false; set("r-cashier", W.cashier + ": " + sale.cashier); }
  const table = document.getElementById("r-lines");
  for (const l of sale.lines) {
    const tr = document.createElement("tr");
    const name = document.createElement("td");
    name.textContent = l.name;
    const detail = document.createElement("div");
    detail.className = "detail";
    detail.textContent = l.qty + " × " + taka(l.unit_price);
    name.appendChild(detail);
    const amount = document.createElement("td");
    amount.className = "num";
    amount.textContent = taka(l.line_total);
    tr.append(name, amount);
    table.appendChild(tr);
  }
  set("r-total-label", W.total); set("r-total", taka(sale.total));
  set("r-pay-label", W.payment); set("r-pay", words[sale.payment] || sale.payment);
  const tendered = q.has("tendered") ? Number(q.get("tendered")) : NaN;
  if (sale.payment === "cash" && Number.isInteger(tendered) && tendered >= sale.total) {
    document.getElementById("r-tendered-row").hidden = false;
    document.getElementById("r-change-row").hidden = false;
    set("r-tendered-label", W.tendered); set("r-tendered", taka(tendered));
    set("r-change-label", W.change); set("r-change", taka(tendered - sale.total));
  }
  set("r-thanks", W.thanks);
  document.getElementById("print").addEventListener("click", () => window.print());
  for (const paper of ["80", "58"]) {
    const other = new URLSearchParams(q);
    other.set("paper", paper);
    document.getElementById("paper-" + paper).href = "/receipt?" + other.toString();
  }
  document.body.dataset.ready = "1";
  if (q.get("print") === "1") window.print();
})();
