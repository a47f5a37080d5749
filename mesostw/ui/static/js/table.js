// Tables that stay fast with tens of thousands of rows: rows are filtered and sorted as data, and
// only one page of them becomes DOM.

import {h, fill} from "./dom.js";

// Compare two sort values: numbers as numbers, the rest as text (naturally: "t2" before "t10").
const collator = new Intl.Collator(undefined, {numeric: true, sensitivity: "base"});
export function compare(a, b) {
  if (typeof a === "number" && typeof b === "number") return a - b;
  return collator.compare(String(a ?? ""), String(b ?? ""));
}

// Rows whose `fields` (functions of a row) hold every word of `text`, case-insensitively.
export function matches(row, text, fields) {
  const words = String(text || "").toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return true;
  const haystack = fields.map((f) => String(f(row) ?? "")).join(" ").toLowerCase();
  return words.every((w) => haystack.includes(w));
}

// Sort (stable) by `value` in `direction` (1 or -1), then take page `page` (from 0) of `size`.
export function sortAndPage(rows, value, direction, page, size) {
  const sorted = value ? rows.slice().sort((a, b) => direction * compare(value(a), value(b))) : rows.slice();
  const pages = Math.max(1, Math.ceil(sorted.length / size));
  const current = Math.min(Math.max(0, page), pages - 1);
  return {rows: sorted.slice(current * size, (current + 1) * size), page: current, pages, total: sorted.length};
}

// columns: [{title, value: row -> sortable value, render: row -> node or text, class}]
export class DataTable {
  constructor({columns, pageSize = 50, sort = 0, direction = 1, empty = "Nothing to show", rowClass, label}) {
    this.columns = columns;
    this.pageSize = pageSize;
    this.sort = sort;
    this.direction = direction;
    this.page = 0;
    this.empty = empty;
    this.rowClass = rowClass;
    this.rows = [];
    this.head = h("thead");
    this.body = h("tbody");
    this.pager = h("div", {class: "pager"});
    this.node = h("div", {class: "table-wrap", "data-table": label || ""},
      h("table", {class: "data"}, this.head, this.body), this.pager);
    this.renderHead();
  }

  renderHead() {
    fill(this.head, h("tr", null, this.columns.map((column, index) => h("th", {
      class: [column.class, column.value ? "sortable" : "", index === this.sort ? (this.direction > 0 ? "asc" : "desc") : ""],
      onclick: column.value ? () => this.sortBy(index) : null,
      title: column.value ? "Sort" : null,
    }, column.title))));
  }

  sortBy(index) {
    this.direction = index === this.sort ? -this.direction : 1;
    this.sort = index;
    this.renderHead();
    this.render();
  }

  setRows(rows) {
    this.rows = rows;
    this.render();
  }

  go(page) {
    this.page = page;
    this.render();
  }

  render() {
    const column = this.columns[this.sort];
    const view = sortAndPage(this.rows, column?.value, this.direction, this.page, this.pageSize);
    this.page = view.page;
    if (!view.rows.length) {
      fill(this.body, h("tr", null, h("td", {colspan: this.columns.length, class: "empty"}, this.empty)));
    } else {
      fill(this.body, view.rows.map((row) => h("tr", {class: this.rowClass ? this.rowClass(row) : null},
        this.columns.map((c) => h("td", {class: c.class}, c.render ? c.render(row) : String(c.value(row) ?? ""))))));
    }
    const first = view.total ? view.page * this.pageSize + 1 : 0;
    const last = Math.min(view.total, (view.page + 1) * this.pageSize);
    fill(this.pager,
      h("span", {class: "range"}, `${first}-${last} of ${view.total}`),
      view.pages > 1 ? [
        h("button", {type: "button", disabled: view.page === 0, onclick: () => this.go(0)}, "« first"),
        h("button", {type: "button", disabled: view.page === 0, onclick: () => this.go(view.page - 1)}, "‹ previous"),
        h("span", {class: "page"}, `page ${view.page + 1} of ${view.pages}`),
        h("button", {type: "button", disabled: view.page >= view.pages - 1, onclick: () => this.go(view.page + 1)}, "next ›"),
        h("button", {type: "button", disabled: view.page >= view.pages - 1, onclick: () => this.go(view.pages - 1)}, "last »"),
      ] : null);
  }
}
