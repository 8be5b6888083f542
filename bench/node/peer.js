// The tardis-dev peer of the tickrec benchmark (bench/peers.py).
//
// Usage: node peer.js DIR MODE REPS
//
// Reads the flat binary change files that bench/peers.py writes to DIR
// (ts.f64, px.f64, sz.f64, op.i8, side.i8, grid.f64, meta.json), feeds them
// to tardis-dev's OrderBook one change at a time, and prints one JSON line
// per repetition: {"changes", "seconds", "check"}. MODE is "grid" (top 10
// levels per side at each grid time) or "bbo" (best bid and ask after every
// change). The checks are computed exactly as bench/changes.py does, after
// the timed loop.
"use strict";

const fs = require("fs");
const path = require("path");
const crypto = require("crypto");
const { OrderBook } = require("tardis-dev");

const SET = 0;

function load(dir, name, Type) {
  const buf = fs.readFileSync(path.join(dir, name));
  const copy = new Uint8Array(buf); // aligned copy for the typed array view
  return new Type(copy.buffer, 0, copy.byteLength / Type.BYTES_PER_ELEMENT);
}

function makeChange(isSnapshot) {
  return {
    type: "book_change",
    symbol: "BTCUSD",
    exchange: "gemini",
    isSnapshot,
    bids: [],
    asks: [],
    timestamp: new Date(0),
    localTimestamp: new Date(0),
  };
}

function runGrid(d, depth) {
  const book = new OrderBook();
  const n = d.ts.length;
  const ng = d.grid.length;
  const rows = new Float64Array(ng * 4 * depth);
  const level = { price: 0, amount: 0 };
  const bidChange = makeChange(false);
  bidChange.bids.push(level);
  const askChange = makeChange(false);
  askChange.asks.push(level);
  const clear = makeChange(true);
  let gi = 0;
  const emit = () => {
    const base = gi * 4 * depth;
    let i = 0;
    for (const l of book.bids()) {
      if (i === depth) break;
      rows[base + i] = l.price;
      rows[base + depth + i] = l.amount;
      i++;
    }
    i = 0;
    for (const l of book.asks()) {
      if (i === depth) break;
      rows[base + 2 * depth + i] = l.price;
      rows[base + 3 * depth + i] = l.amount;
      i++;
    }
    gi++;
  };
  const t0 = process.hrtime.bigint();
  for (let k = 0; k < n; k++) {
    const t = d.ts[k];
    while (gi < ng && d.grid[gi] < t) emit();
    if (d.op[k] === SET) {
      level.price = d.px[k];
      level.amount = d.sz[k];
      book.update(d.side[k] === 0 ? bidChange : askChange);
    } else {
      book.update(clear);
    }
  }
  while (gi < ng) emit();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { seconds, check: gridCheck(d, rows, depth) };
}

function gridCheck(d, rows, depth) {
  const ng = d.grid.length;
  const width = 1 + 4 * depth;
  const mat = new BigInt64Array(ng * width);
  for (let r = 0; r < ng; r++) {
    mat[r * width] = d.base + BigInt(d.grid[r]);
    for (let j = 0; j < 4 * depth; j++) mat[r * width + 1 + j] = BigInt(rows[r * 4 * depth + j]);
  }
  const digest = crypto.createHash("blake2b512").update(new Uint8Array(mat.buffer)).digest("hex");
  return `grid:${ng}:${digest.slice(0, 16)}`;
}

function runBbo(d, mod) {
  const book = new OrderBook();
  const n = d.ts.length;
  const level = { price: 0, amount: 0 };
  const bidChange = makeChange(false);
  bidChange.bids.push(level);
  const askChange = makeChange(false);
  askChange.asks.push(level);
  const clear = makeChange(true);
  let bp = 0;
  let bs = 0;
  let ap = 0;
  let as = 0;
  const t0 = process.hrtime.bigint();
  for (let k = 0; k < n; k++) {
    if (d.op[k] !== SET) {
      book.update(clear);
      continue;
    }
    level.price = d.px[k];
    level.amount = d.sz[k];
    book.update(d.side[k] === 0 ? bidChange : askChange);
    const b = book.bestBid();
    if (b !== undefined) {
      bp = (bp + b.price) % mod;
      bs = (bs + b.amount) % mod;
    }
    const a = book.bestAsk();
    if (a !== undefined) {
      ap = (ap + a.price) % mod;
      as = (as + a.amount) % mod;
    }
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { seconds, check: `bbo:${d.changes}:${bp}:${bs}:${ap}:${as}` };
}

function main() {
  const [dir, mode, repsText] = process.argv.slice(2);
  const meta = JSON.parse(fs.readFileSync(path.join(dir, "meta.json"), "utf8"));
  const d = {
    ts: load(dir, "ts.f64", Float64Array),
    px: load(dir, "px.f64", Float64Array),
    sz: load(dir, "sz.f64", Float64Array),
    op: load(dir, "op.i8", Int8Array),
    side: load(dir, "side.i8", Int8Array),
    grid: load(dir, "grid.f64", Float64Array),
    base: BigInt(meta.base_ns),
    changes: meta.changes,
  };
  for (let r = 0; r < Number(repsText); r++) {
    const out = mode === "grid" ? runGrid(d, meta.depth) : runBbo(d, meta.mod);
    process.stdout.write(JSON.stringify({ changes: d.changes, ...out }) + "\n");
  }
}

main();
