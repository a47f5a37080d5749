// A small layered drawing of a dependency graph (parents above children), in SVG: layers by longest
// path from the roots, order within layers by barycentres (a few sweeps, to uncross edges).

import {s, fill} from "./dom.js";

// nodes: [{id, ...}], edges: [[parentId, childId]]. Returns {nodes: [{id, layer, order, x, y}], edges:
// [{from, to, path}], width, height}; edges to unknown nodes and edges closing a cycle are left out.
export function layout(nodes, edges, {nodeWidth = 150, nodeHeight = 36, gapX = 30, gapY = 60, margin = 10} = {}) {
  const ids = new Set(nodes.map((n) => n.id));
  const parents = new Map(nodes.map((n) => [n.id, []]));
  const children = new Map(nodes.map((n) => [n.id, []]));
  for (const [from, to] of edges) {
    if (!ids.has(from) || !ids.has(to) || from === to) continue;
    parents.get(to).push(from);
    children.get(from).push(to);
  }
  // Edges that close a cycle (back edges of a depth-first walk from the roots) are left out.
  const kept = [];
  const done = new Set();
  const onPath = new Set();
  function walk(nodeId) {
    onPath.add(nodeId);
    for (const child of children.get(nodeId)) {
      if (onPath.has(child)) continue;
      kept.push([nodeId, child]);
      if (!done.has(child)) walk(child);
    }
    onPath.delete(nodeId);
    done.add(nodeId);
  }
  const roots = nodes.filter((n) => !parents.get(n.id).length);
  for (const n of [...roots, ...nodes]) if (!done.has(n.id)) walk(n.id);
  // Layers: the longest path from a root over the kept edges.
  const keptParents = new Map(nodes.map((n) => [n.id, []]));
  const keptChildren = new Map(nodes.map((n) => [n.id, []]));
  for (const [from, to] of kept) {
    keptParents.get(to).push(from);
    keptChildren.get(from).push(to);
  }
  const layer = new Map();
  function depth(nodeId) {
    if (!layer.has(nodeId)) {
      layer.set(nodeId, 0); // a guard only: the kept edges have no cycle
      layer.set(nodeId, Math.max(0, ...keptParents.get(nodeId).map((p) => depth(p) + 1)));
    }
    return layer.get(nodeId);
  }
  for (const n of nodes) depth(n.id);
  const layers = [];
  for (const n of nodes) {
    const l = layer.get(n.id);
    (layers[l] = layers[l] || []).push(n.id);
  }
  const order = new Map();
  for (const row of layers) row.forEach((nodeId, i) => order.set(nodeId, i));
  const centre = (list, fallback) => (list.length ? list.reduce((sum, x) => sum + order.get(x), 0) / list.length : fallback);
  for (let sweep = 0; sweep < 4; sweep += 1) {
    const down = sweep % 2 === 0;
    const sequence = down ? layers.slice(1) : layers.slice(0, -1).reverse();
    for (const row of sequence) {
      const keyed = row.map((nodeId) => [centre(down ? keptParents.get(nodeId) : keptChildren.get(nodeId), order.get(nodeId)), nodeId]);
      keyed.sort((a, b) => a[0] - b[0]);
      row.splice(0, row.length, ...keyed.map(([, nodeId]) => nodeId));
      row.forEach((nodeId, i) => order.set(nodeId, i));
    }
  }
  const widest = Math.max(1, ...layers.map((row) => row.length));
  const width = margin * 2 + widest * nodeWidth + (widest - 1) * gapX;
  const height = margin * 2 + layers.length * nodeHeight + Math.max(0, layers.length - 1) * gapY;
  const placed = new Map();
  layers.forEach((row, l) => {
    const rowWidth = row.length * nodeWidth + (row.length - 1) * gapX;
    const left = (width - rowWidth) / 2;
    row.forEach((nodeId, i) => {
      placed.set(nodeId, {id: nodeId, layer: l, order: i, x: left + i * (nodeWidth + gapX),
        y: margin + l * (nodeHeight + gapY), width: nodeWidth, height: nodeHeight});
    });
  });
  const drawn = kept.map(([from, to]) => {
    const a = placed.get(from);
    const b = placed.get(to);
    const x1 = a.x + nodeWidth / 2;
    const y1 = a.y + nodeHeight;
    const x2 = b.x + nodeWidth / 2;
    const y2 = b.y;
    const bend = (y2 - y1) / 2;
    return {from, to, path: `M${x1},${y1} C${x1},${y1 + bend} ${x2},${y2 - bend} ${x2},${y2}`};
  });
  return {nodes: nodes.map((n) => ({...n, ...placed.get(n.id)})), edges: drawn, width, height};
}

// Shortens a label to fit a box of `width` pixels (about 7 px a character).
export function clip(label, width) {
  const text = String(label ?? "");
  const room = Math.max(3, Math.floor((width - 16) / 7));
  return text.length > room ? text.slice(0, room - 1) + "…" : text;
}

// The SVG of a layout: nodes are links (`href(node)`), classed by `kind(node)`, titled with their label.
export function drawGraph(graph, {href, kind, label}) {
  const svg = s("svg", {class: "graph", width: graph.width, height: graph.height,
    viewBox: `0 0 ${graph.width} ${graph.height}`, role: "img"});
  const defs = s("defs", null, s("marker", {id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7,
    markerHeight: 7, orient: "auto-start-reverse"}, s("path", {d: "M0,0 L10,5 L0,10 z", class: "arrowhead"})));
  fill(svg, defs,
    graph.edges.map((e) => s("path", {d: e.path, class: "edge", "marker-end": "url(#arrow)",
      "data-from": e.from, "data-to": e.to})),
    graph.nodes.map((n) => s("a", {href: href(n), class: `node ${kind(n)}`, "data-node": n.id},
      s("title", null, label(n)),
      s("rect", {x: n.x, y: n.y, width: n.width, height: n.height, rx: 6}),
      s("text", {x: n.x + n.width / 2, y: n.y + n.height / 2 + 4, "text-anchor": "middle"}, clip(label(n), n.width)))));
  return svg;
}
