// The Live view: stock prices from the filtered topic `stocks` on a line chart, and the
// score board of the demo games, whose updates go to the rooms game-1..3.

import { $, el, fillList, run, timeEl } from "./dom.js";
import { LineChart } from "./chart.js";

export const GAME_ROOMS = ["game-1", "game-2", "game-3"];
const TOPIC = "stocks";
const SYMBOLS = ["AAPL", "AMZN", "GOOG", "MSFT", "NVDA", "TSLA"];

export function setupLive({ client, state }) {
  const live = (state.live = { symbols: new Set(), scores: new Map() });
  const chart = new LineChart($("#ticker-chart"), $("#ticker-legend"), {
    series: SYMBOLS.map((key) => ({ key })),
    maxPoints: 120,
    format: (price) => price.toFixed(2),
  });

  $("#symbols").append(...SYMBOLS.map((symbol) =>
    el("label", { class: "chip" }, el("input", { type: "checkbox", name: "symbol", value: symbol, autocomplete: "off" }), symbol)));
  $("#symbols").addEventListener("change", () => run(pickSymbols()));

  /**
   * The subscription belongs to the user and outlives this page, so updates can carry
   * symbols this tab did not pick: only the checked ones are charted.
   */
  async function pickSymbols() {
    const keys = [...document.querySelectorAll("input[name=symbol]:checked")].map((input) => input.value);
    live.symbols = new Set(keys);
    for (const key of chart.keys) if (!live.symbols.has(key)) chart.remove(key);
    renderTickerHint();
    if (keys.length) await client.subscribe(TOPIC, keys);
    else await client.unsubscribe(TOPIC);
  }

  function renderTickerHint() {
    const waiting = chart.keys.length === 0;
    $("#ticker-empty").hidden = !waiting;
    $("#ticker-empty").textContent = live.symbols.size ? "Waiting for prices…" : "Pick symbols to see their live prices.";
  }

  client.on("stock_update", (message) => {
    if (message.topic !== TOPIC || !Array.isArray(message.data)) return;
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
