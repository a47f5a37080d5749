// Line diff of two texts (longest common subsequence), for comparing app versions.

// Returns [{op: " " | "-" | "+", line}] turning `a` into `b`.
export function diffLines(a, b) {
  const x = String(a).split("\n");
  const y = String(b).split("\n");
  const n = x.length;
  const m = y.length;
  // lengths[i][j]: LCS of x[i:] and y[j:]
  const lengths = Array.from({length: n + 1}, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i -= 1) {
    for (let j = m - 1; j >= 0; j -= 1) {
      lengths[i][j] = x[i] === y[j] ? lengths[i + 1][j + 1] + 1 : Math.max(lengths[i + 1][j], lengths[i][j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) {
      out.push({op: " ", line: x[i]});
      i += 1;
      j += 1;
    } else if (lengths[i + 1][j] >= lengths[i][j + 1]) {
      out.push({op: "-", line: x[i]});
      i += 1;
    } else {
      out.push({op: "+", line: y[j]});
      j += 1;
    }
  }
  while (i < n) out.push({op: "-", line: x[i++]});
  while (j < m) out.push({op: "+", line: y[j++]});
  return out;
}

// JSON with sorted keys, so that two versions' texts line up.
export function canonical(value, ignore = []) {
  const skip = new Set(ignore);
  const sortKeys = (v) => {
    if (Array.isArray(v)) return v.map(sortKeys);
    if (v && typeof v === "object") {
      return Object.fromEntries(Object.keys(v).filter((k) => !skip.has(k)).sort().map((k) => [k, sortKeys(v[k])]));
    }
    return v;
  };
  return JSON.stringify(sortKeys(value), null, 2);
}
