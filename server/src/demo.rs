//! The demo feed (`roomcast --demo`): what the demo page's live view shows, published the
//! way an application backend would. Simulated stock ticks go to the filtered topic
//! `stocks` (each subscriber gets only its symbols), and football scores go to the rooms
//! `game-1` to `game-3`. Nothing is stored: live data that nobody watches is dropped.
//!
//! In a cluster every node with the demo on runs this task, but only the node that
//! [leads](crate::broker::Broker::leads) at a tick publishes it (its ticks reach every
//! node through the bus), so the feed ticks once however many nodes have it on, and
//! moves when its node goes. Each node owns its own walk: the one taking over carries on
//! from where its own stopped, not from the last leader's prices.

use std::time::Duration;

use roomcast_protocol::RoomName;
use serde_json::value::{RawValue, to_raw_value};
use serde_json::{Value, json};
use tokio::time::MissedTickBehavior;
use tracing::warn;

use crate::broker::Target;
use crate::hub::Hub;
use crate::now_ms;

/// How often the stocks tick; scores move every second tick.
const TICK: Duration = Duration::from_millis(500);
/// The topic and message type of stock ticks.
pub(crate) const STOCKS_TOPIC: &str = "stocks";
/// Symbols and their opening prices.
const STOCKS: [(&str, f64); 6] = [
    ("AAPL", 190.0),
    ("AMZN", 180.0),
    ("GOOG", 170.0),
    ("MSFT", 420.0),
    ("NVDA", 120.0),
    ("TSLA", 250.0),
];
/// The games: room, home team, away team.
const GAMES: [(&str, &str, &str); 3] = [
    ("game-1", "Lions", "Tigers"),
    ("game-2", "Hawks", "Wolves"),
    ("game-3", "Bears", "Sharks"),
];
/// A game restarts after this minute.
const FULL_TIME: u32 = 90;

/// One game's state.
#[derive(Debug, Clone, Copy, Default)]
struct Game {
    home: u32,
    away: u32,
    minute: u32,
}

/// Runs the feed until the hub shuts down.
pub(crate) async fn run_demo(hub: Hub, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut prices: Vec<f64> = STOCKS.iter().map(|(_, price)| *price).collect();
    let mut games = [Game::default(); GAMES.len()];
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    for tick in 0_u64.. {
        tokio::select! {
            _ = ticker.tick() => {}
            () = hub.shutdown_token().cancelled() => return,
        }
        if !hub.leads() {
            continue;
        }
        publish_stocks(&hub, &mut rng, &mut prices).await;
        if tick % 2 == 0 {
            for (game, (room, home, away)) in games.iter_mut().zip(GAMES) {
                play(game, &mut rng);
                let message = json!({
                    "type": "score_update",
                    "game": room,
                    "home": home,
                    "away": away,
                    "homeScore": game.home,
                    "awayScore": game.away,
                    "minute": game.minute,
                    "timestamp": now_ms(),
                });
                send_score(&hub, room, &message).await;
            }
        }
    }
}

/// A random walk of at most ±0.5% per tick, rounded to cents.
async fn publish_stocks(hub: &Hub, rng: &mut fastrand::Rng, prices: &mut [f64]) {
    let timestamp = now_ms();
    let mut items: Vec<Box<RawValue>> = Vec::with_capacity(prices.len());
    for ((symbol, _), price) in STOCKS.iter().zip(prices.iter_mut()) {
        let before = *price;
        *price = ((before * (1.0 + (rng.f64() - 0.5) / 100.0)) * 100.0).round() / 100.0;
        let change = ((*price - before) * 100.0).round() / 100.0;
        let item =
            json!({ "key": symbol, "price": price, "change": change, "timestamp": timestamp });
        match to_raw_value(&item) {
            Ok(raw) => items.push(raw),
            Err(err) => warn!(cause = %err, "demo tick not serialized"),
        }
    }
    if let Err(err) = hub
        .publish_topic(STOCKS_TOPIC, "stock_update", &items)
        .await
    {
        warn!(cause = %err, "demo stocks not published");
    }
}

/// A minute or three of play: sometimes a goal; a new game after full time.
fn play(game: &mut Game, rng: &mut fastrand::Rng) {
    if game.minute >= FULL_TIME {
        *game = Game::default();
        return;
    }
    game.minute = (game.minute + rng.u32(1..=3)).min(FULL_TIME);
    match rng.u32(0..20) {
        0 => game.home += 1,
        1 => game.away += 1,
        _ => {}
    }
}

async fn send_score(hub: &Hub, room: &str, message: &Value) {
    let Ok(room) = RoomName::new(room) else {
        return;
    };
    if let Err(err) = hub.broadcast(Target::Room(room), message).await {
        warn!(cause = %err, "demo score not sent");
    }
}
