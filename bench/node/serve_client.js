// A websocket client of `tickrec serve` for `python -m bench --only serve`: it reads
// every stored connection of a route, opening the next after each close until the
// server closes with 1000 (the end of the recording), and prints the messages and
// bytes it read and the seconds from its first message to its last, as JSON.
"use strict";
const WebSocket = require("ws");

const url = process.argv[2];
let messages = 0;
let bytes = 0;
let connections = 0;
let first = 0n;
let last = 0n;

function open() {
  connections += 1;
  const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 0 });
  ws.on("message", (data) => {
    if (messages === 0) first = process.hrtime.bigint();
    messages += 1;
    bytes += data.length;
  });
  ws.on("close", (code) => {
    last = process.hrtime.bigint();
    if (code === 1000) {
      const seconds = Number(last - first) / 1e9;
      process.stdout.write(JSON.stringify({ messages, bytes, seconds, connections }) + "\n");
    } else {
      open();
    }
  });
  ws.on("error", (err) => {
    process.stderr.write(`${err}\n`);
    process.exit(1);
  });
}

open();
