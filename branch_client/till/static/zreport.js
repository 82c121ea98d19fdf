// The Z report's rows, shared by the till page and its print page: [label, value] pairs in the
// order a manager checks them (the shift, its sales, then its cash from the float on);
// `t` gives the words, `taka` the amounts, `when` the times.
"use strict";
window.zReportRows = function (z, t, taka, when) {
  const less = (v) => (v ? "−" + taka(v) : taka(0));
  const methods = Object.entries(z.by_method || {}).map(([m, v]) => [t("z_method", { m: t(m) }), taka(v)]);
  const diff = z.difference || 0;
  return [
    [t("cashier"), z.cashier || "-"],
    [t("z_opened"), when(z.opened_at)],
    [t("z_closed"), when(z.closed_at)],
    [t("z_sales", { n: z.sales }), taka(z.gross)],
    [t("z_discounts"), less(z.discounts)],
    [t("z_net"), taka(z.net)],
    [t("z_refunds", { n: z.refunds }), less(z.refunded)],
    [t("z_voids", { n: z.voids }), less(z.voided)],
    ...methods,
    null,  // the cash: a column of its own on the screen
    [t("z_float"), taka(z.opening_float)],
    [t("z_cash_in"), taka(z.cash_in)],
    [t("z_cash_out"), less(z.cash_out)],
    [t("z_expected"), taka(z.expected_cash)],
    [t("z_counted"), taka(z.counted_cash)],
    [diff > 0 ? t("z_over") : diff < 0 ? t("z_short") : t("z_difference"), taka(diff)],
  ];
};
