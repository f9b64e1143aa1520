(() => {
  "use strict";
  const data = JSON.parse(document.getElementById("report-data").textContent);
  // Field positions of the compact arrays (pipeline/report.py, page_data).
  const C = { ID: 0, SOURCE: 1, URL: 2, TITLE: 3, LENGTH: 4, DATE: 5, MEMBERS: 6, DIFF: 7 };
  const M = {
    ID: 0, SOURCE: 1, URL: 2, TITLE: 3, SIM: 4, CONT: 5, EXACT: 6, REASON: 7, LENGTH: 8, MATCHED: 9,
  };
  const reasons = data.reasons;
  const PAGE_SIZE = 20;
  const MEMBER_PAGE = 50;
  const clusters = data.clusters;
  const nf = new Intl.NumberFormat("en");
  const $ = (id) => document.getElementById(id);

  // Every piece of scraped text goes in through textContent: nothing from the data is parsed as HTML.
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function link(url, text) {
    // Only http(s) URLs become links: a "javascript:" URL from a scraped page stays text.
    if (typeof url !== "string" || !/^https?:\/\//i.test(url)) return el("span", "", text);
    const a = el("a", "", text);
    a.href = url;
    a.rel = "noopener noreferrer nofollow";
    a.target = "_blank";
    return a;
  }

  // Tabs
  const tabs = Array.from(document.querySelectorAll('nav.tabs [role="tab"]'));
  for (const tab of tabs) {
    tab.addEventListener("click", () => {
      for (const other of tabs) {
        const on = other === tab;
        other.setAttribute("aria-selected", on ? "true" : "false");
        $(other.getAttribute("aria-controls")).hidden = !on;
      }
    });
  }

  // Clusters: filter, sort, paginate
  const minSim = clusters.map((c) => c[C.MEMBERS].reduce((low, m) => Math.min(low, m[M.SIM]), 1));
  let haystacks = null;
  function haystack(c) {
    const parts = [c[C.ID], c[C.SOURCE], c[C.URL], c[C.TITLE]];
    for (const m of c[C.MEMBERS]) {
      parts.push(m[M.ID], m[M.SOURCE], m[M.URL], m[M.TITLE], reasons[m[M.REASON]]);
    }
    return parts.filter((p) => p !== null && p !== undefined).join("\n").toLowerCase();
  }
  let visible = clusters.map((_, i) => i);
  let page = 0;
  const search = $("search"), kindSelect = $("kind"), sortSelect = $("sort");
  const list = $("cluster-list"), countLabel = $("cluster-count");

  function applyFilter() {
    const terms = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    const kind = kindSelect.value;
    if (terms.length && haystacks === null) haystacks = clusters.map(haystack);
    visible = [];
    for (let i = 0; i < clusters.length; i++) {
      const members = clusters[i][C.MEMBERS];
      if (kind === "near" && members.every((m) => m[M.EXACT])) continue;
      if (kind === "exact" && !members.every((m) => m[M.EXACT])) continue;
      if (terms.length && !terms.every((t) => haystacks[i].includes(t))) continue;
      visible.push(i);
    }
    if (sortSelect.value === "similarity") visible.sort((a, b) => minSim[a] - minSim[b] || a - b);
    page = 0;
    render();
  }
  let timer = 0;
  search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(applyFilter, 120); });
  kindSelect.addEventListener("change", applyFilter);
  sortSelect.addEventListener("change", applyFilter);

  function pages() { return Math.max(1, Math.ceil(visible.length / PAGE_SIZE)); }
  function go(to) { page = Math.min(Math.max(0, to), pages() - 1); render(); list.scrollIntoView(); }
  $("first").addEventListener("click", () => go(0));
  $("prev").addEventListener("click", () => go(page - 1));
  $("next").addEventListener("click", () => go(page + 1));
  $("last").addEventListener("click", () => go(pages() - 1));

  function render() {
    const total = clusters.length;
    countLabel.textContent = visible.length === total
      ? nf.format(total) + (total === 1 ? " cluster" : " clusters")
      : nf.format(visible.length) + " of " + nf.format(total) + " clusters";
    const start = page * PAGE_SIZE;
    const cards = visible.slice(start, start + PAGE_SIZE).map((i) => clusterCard(clusters[i]));
    if (!cards.length) cards.push(el("p", "empty", total ? "No cluster matches." : "No duplicates found."));
    list.replaceChildren(...cards);
    $("page-info").textContent = visible.length
      ? "clusters " + nf.format(start + 1) + "–" + nf.format(Math.min(start + PAGE_SIZE, visible.length)) +
        " of " + nf.format(visible.length) + " · page " + (page + 1) + " of " + pages()
      : "";
    $("first").disabled = $("prev").disabled = page === 0;
    $("next").disabled = $("last").disabled = page >= pages() - 1;
  }

  function clusterCard(c) {
    const card = el("article", "cluster");
    const head = el("header");
    const title = el("h3");
    title.append(el("span", "badge", nf.format(c[C.MEMBERS].length + 1) + " documents"));
    title.append(c[C.TITLE] || "(no title)");
    head.append(title);
    const meta = el("div", "meta");
    meta.append("kept: ", el("code", "", c[C.SOURCE]), " · " + nf.format(c[C.LENGTH] || 0) + " characters");
    if (c[C.DATE]) meta.append(" · " + c[C.DATE]);
    meta.append(" · id ", el("code", "", c[C.ID]));
    if (c[C.URL]) meta.append(" · ", link(c[C.URL], c[C.URL]));
    head.append(meta);
    card.append(head);

    const table = el("table", "members");
    const hrow = el("tr");
    for (const name of ["copy", "kind", "similarity", "containment", "length", "why it lost", ""]) {
      hrow.append(el("th", "", name));
    }
    const thead = el("thead");
    thead.append(hrow);
    table.append(thead);
    const body = el("tbody");
    table.append(body);
    const members = c[C.MEMBERS];
    let shown = 0;
    const more = el("button", "more");
    function showMore() {
      const end = Math.min(members.length, shown + MEMBER_PAGE);
      for (; shown < end; shown++) body.append(memberRow(c, members[shown]));
      more.hidden = shown >= members.length;
      more.textContent = "show " + nf.format(Math.min(MEMBER_PAGE, members.length - shown)) +
        " more of " + nf.format(members.length - shown);
    }
    more.addEventListener("click", showMore);
    showMore();
    card.append(table, more);
    return card;
  }

  function memberRow(c, m) {
    const row = el("tr");
    const src = el("td", "src");
    src.append(m[M.URL] ? link(m[M.URL], m[M.SOURCE]) : el("span", "", m[M.SOURCE]));
    if (m[M.TITLE] !== null) src.append(el("div", "title", m[M.TITLE]));
    if (m[M.MATCHED] !== null) src.append(el("div", "title", "linked through " + m[M.MATCHED]));
    const kind = el("td");
    const kindName = m[M.EXACT] ? "exact" : "near";
    kind.append(el("span", "badge " + kindName, kindName));
    const button = el("button", "diff-toggle", "diff");
    button.type = "button";
    button.setAttribute("aria-expanded", "false");
    const action = el("td");
    action.append(button);
    row.append(
      src, kind,
      el("td", "num", m[M.SIM].toFixed(3)),
      el("td", "num", m[M.CONT].toFixed(3)),
      el("td", "num", nf.format(m[M.LENGTH])),
      el("td", "", reasons[m[M.REASON]]),
      action,
    );
    let detail = null;
    button.addEventListener("click", () => {
      if (detail) {
        detail.remove();
        detail = null;
        button.setAttribute("aria-expanded", "false");
        return;
      }
      detail = el("tr", "diff-row");
      const cell = el("td");
      cell.colSpan = 7;
      cell.append(diffView(c, m));
      detail.append(cell);
      row.after(detail);
      button.setAttribute("aria-expanded", "true");
    });
    return row;
  }

  // the changed words highlighted, the space after them not
  function marked(tag, text) {
    const core = text.replace(/\s+$/, "");
    return [el(tag, "", core), text.slice(core.length)];
  }

  function diffView(c, m) {
    const box = el("div", "diff");
    const entry = c[C.DIFF] >= 0 ? data.diffs[c[C.DIFF]] : null;
    const diff = entry ? entry[2][m[M.ID]] : undefined;
    if (!diff) {
      const note = el("p", "diff-note", "This diff is not embedded in the page (it holds the largest " +
        "clusters only). In a terminal: ");
      note.append(el("code", "", "pipeline report " + data.output + " --cluster " + c[C.ID]));
      box.append(note);
      return box;
    }
    const tokens = entry[0], ops = diff[0];
    const changed = ops.some((op) => op[0] !== 0);
    let text = changed
      ? "Words only in the kept text are struck out on the left; words only in the copy are marked " +
        "on the right."
      : "Same words as the kept text" +
        (m[M.EXACT] ? " (an exact copy)." : "; only spacing differs.");
    if (entry[1] || diff[1]) text += " Compared on the first " + nf.format(tokens.length) + " words.";
    box.append(el("p", "diff-note", text));
    const kept = el("div", "diff-text"), copy = el("div", "diff-text");
    for (const op of ops) {
      if (op[0] === 0) {
        const same = tokens.slice(op[1], op[2]).join("");
        kept.append(same);
        copy.append(same);
      } else if (op[0] === 1) {
        kept.append(...marked("del", tokens.slice(op[1], op[2]).join("")));
      } else {
        copy.append(...marked("ins", op[1]));
      }
    }
    const cols = el("div", "diff-cols");
    const left = el("div"), right = el("div");
    left.append(el("h4", "", "kept: " + c[C.SOURCE]), kept);
    right.append(el("h4", "", "copy: " + m[M.SOURCE]), copy);
    cols.append(left, right);
    box.append(cols);
    return box;
  }

  // Boilerplate view: filter by source or line. The smaller sources' group opens while it holds a match
  // (and closes again when the filter is cleared, unless the reader had opened it).
  const bpSearch = $("bp-search");
  const fold = document.querySelector("details.bp-fold");
  let openedByFilter = false;
  const has = (node, q) => node.textContent.toLowerCase().includes(q);
  if (bpSearch) {
    bpSearch.addEventListener("input", () => {
      const q = bpSearch.value.toLowerCase().trim();
      for (const section of document.querySelectorAll(".bp-source")) {
        const nameHit = has(section.querySelector(".bp-name"), q);
        let any = false;
        for (const row of section.querySelectorAll("tbody tr")) {
          const hit = !q || nameHit || has(row.cells[0], q);
          row.hidden = !hit;
          any = any || hit;
        }
        section.hidden = !any;
      }
      if (!fold) return;
      let any = false;
      for (const part of fold.querySelectorAll(".bp-fold-part")) {
        let rows = 0;
        for (const row of part.querySelectorAll("tbody tr")) {
          const cells = Array.from(row.querySelectorAll(".bp-name, .line"));
          const hit = !q || cells.some((cell) => has(cell, q));
          row.hidden = !hit;
          rows += hit ? 1 : 0;
        }
        part.hidden = q !== "" && rows === 0;
        any = any || rows > 0;
      }
      fold.hidden = !any;
      if (q && any && !fold.open) {
        fold.open = true;
        openedByFilter = true;
      } else if (!q && openedByFilter) {
        fold.open = false;
        openedByFilter = false;
      }
    });
  }
  if (fold) fold.addEventListener("toggle", () => { if (!fold.open) openedByFilter = false; });

  render();
})();
