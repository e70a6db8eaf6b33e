// The Live view: stock prices from the filtered topic `stocks` on a line chart, and the
// score board of the demo games, whose updates go to the rooms game-1..3.

import { $, el, fillList, run, timeEl } from "./dom.js";
import { LineChart } from "./chart.js";

export const GAME_ROOMS = ["game-1", "game-2", "game-3"];
const TOPIC = "stocks";
const SYMBOLS = ["AAPL", "AMZN", "GOOG", "MSFT", "NVDA", "TSLA"];
/**
 * How long after the page's own subscribe/unsubscribe is answered ticks may still carry
 * the old keys: the server can filter a tick with the old keys and queue it after the
 * reply. The feed ticks every 500 ms.
 */
const SETTLE_MS = 1000;

/**
 * The server stores the subscription per user: it survives a reload and is shared by all
 * the user's tabs. The checkboxes follow it: each `stock_update` carries exactly the
 * user's current keys, so a tick with other keys (a reload, another tab's choice) sets
 * the boxes and the charted symbols to match.
 */
export function setupLive({ client, state }) {
  const live = (state.live = { symbols: new Set(), scores: new Map() });
  const chart = new LineChart($("#ticker-chart"), $("#ticker-legend"), {
    series: SYMBOLS.map((key) => ({ key })),
    maxPoints: 120,
    format: (price) => price.toFixed(2),
  });
  // The keys the server last confirmed (reply or tick), what a failed change goes back to.
  let confirmed = new Set();
  let picks = 0; // the latest change; only its failure restores the boxes
  let pending = 0; // changes not answered yet: ticks meanwhile may carry either set
  let settledAt = 0;

  $("#symbols").append(...SYMBOLS.map((symbol) =>
    el("label", { class: "chip" }, el("input", { type: "checkbox", name: "symbol", value: symbol, autocomplete: "off" }), symbol)));
  $("#symbols").addEventListener("change", () => run(pickSymbols()));

  const checkboxes = () => [...document.querySelectorAll("input[name=symbol]")];
  const checkedKeys = () => checkboxes().filter((box) => box.checked).map((box) => box.value);

  /** Charts exactly `keys` and checks exactly their boxes. */
  function showSymbols(keys) {
    live.symbols = new Set(keys);
    for (const box of checkboxes()) box.checked = live.symbols.has(box.value);
    for (const key of chart.keys) if (!live.symbols.has(key)) chart.remove(key);
    renderTickerHint();
  }

  /** Sends the checked set; the server's answer (or the old set, on failure) is shown. */
  async function pickSymbols() {
    const keys = checkedKeys();
    const seq = ++picks;
    showSymbols(keys);
    pending += 1;
    try {
      if (keys.length) {
        const reply = await client.subscribe(TOPIC, keys);
        confirmed = new Set(reply?.keys ?? keys);
      } else {
        await client.unsubscribe(TOPIC);
        confirmed = new Set();
      }
      // A later change owns the boxes now; the server applies changes in order.
      if (seq === picks) showSymbols([...confirmed]);
    } catch (error) {
      if (seq === picks) showSymbols([...confirmed]);
      throw error;
    } finally {
      pending -= 1;
      settledAt = Date.now();
    }
  }

  function renderTickerHint() {
    const waiting = chart.keys.length === 0;
    $("#ticker-empty").hidden = !waiting;
    $("#ticker-empty").textContent = live.symbols.size ? "Waiting for prices…" : "Pick symbols to see their live prices.";
  }

  /** Follows the server's keys, unless this page's own change may not be in them yet. */
  function followServer(keys) {
    if (pending || Date.now() - settledAt < SETTLE_MS) return;
    confirmed = keys;
    if (keys.size !== live.symbols.size || [...keys].some((key) => !live.symbols.has(key))) showSymbols([...keys]);
  }

  client.on("stock_update", (message) => {
    if (message.topic !== TOPIC || !Array.isArray(message.data)) return;
    followServer(new Set(message.data.map((item) => item.key)));
    for (const item of message.data) {
      if (live.symbols.has(item.key)) chart.push(item.key, item.timestamp ?? message.timestamp, Number(item.price));
    }
    renderTickerHint();
  });

  client.on("score_update", (score) => {
    live.scores.set(String(score.game), score);
    renderScores();
  });

  function renderScores() {
    const scores = [...live.scores.values()].sort((a, b) => String(a.game).localeCompare(String(b.game)));
    fillList($("#scores"), scores.map(scoreEl), "Waiting for the games to start…");
  }

  renderTickerHint();
  renderScores();
  for (const room of GAME_ROOMS) run(client.join(room));
}

function scoreEl(s) {
  return el("li", { class: "score", data: { game: String(s.game) } },
    el("div", { class: "game" }, el("span", { text: String(s.game) }), el("span", { class: "minute", text: `${s.minute}′` })),
    el("div", { class: "line" },
      el("span", { class: "team home", text: String(s.home) }),
      el("span", { class: "result", text: `${s.homeScore} – ${s.awayScore}` }),
      el("span", { class: "team away", text: String(s.away) })),
    timeEl(s.timestamp, true));
}
