// Compiled by `tsc --noEmit --strict` in the test command (never run): the package's
// declarations must be valid TypeScript and type the API the way the README shows. Each
// `@ts-expect-error` line must fail to compile, or tsc reports the directive as unused.
import { RoomcastClient, type ClientEvent, type RoomcastError, type ServerMessage, type TopicMessage } from "../../pkg/bundler/roomcast_client";

export async function usage(): Promise<void> {
  const client = new RoomcastClient("wss://chat.example.com/ws", {
    getToken: async () => "token",
    reconnect: { initialDelayMs: 500, maxRetries: 10 },
  });
  client.onStateChange((change) => {
    if (change.state === "reconnecting") {
      const wait: number = change.delayMs + change.attempt;
      void wait;
    } else if (change.state === "closed") {
      const code: number | null = change.code;
      const reason: string = change.reason;
      void code, reason;
    }
  });
  client.on("chat", (chat) => {
    const room: string = chat.room;
    const sender: string = chat.from.userId;
    // @ts-expect-error: a chat has no `title`
    const title: string = chat.title;
    void room, sender, title;
  });
  client.on("notification", (n) => {
    const unread: boolean = !n.read;
    void client.markRead(n.id).then((r) => r.notificationId.length);
    void unread;
  });
  client.on("private", (p) => {
    const conversation: string = p.from.userId === "me" ? p.to : p.from.userId;
    void conversation;
  });
  client.on("stats_update", (stats) => {
    const rate: number = stats.messagesInPerSec + stats.messagesOutPerSec;
    void rate, stats.connections;
  });
  client.on("stock_update", (update: TopicMessage) => {
    const keys: string[] = update.data.map((item) => item.key);
    void keys, update.topic;
  });
  client.on("rejoined", (event) => {
    const recovered: boolean = event.recovered;
    const replayed: number = event.replayed;
    void recovered, replayed;
  });
  client.on("rejoin_failed", (event) => {
    const why: string = event.code + event.message + event.room;
    void why;
  });
  client.on("*", (message: ServerMessage | ClientEvent) => void message.type);
  // @ts-expect-error: options need an object
  new RoomcastClient("wss://x/ws", "token");

  await client.connect();
  const joined = await client.join("lobby");
  const flags: boolean = joined.recovered;
  const sent = await client.chat("lobby", { text: "hello" });
  const id: string = sent.id;
  const { items } = await client.history("lobby", { limit: 20, before: id });
  const first: string | undefined = items[0]?.room;
  const priv = await client.sendPrivate("bob", "hi");
  const delivered: boolean = priv.delivered;
  const target: string = priv.targetUserId;
  const conversation = await client.privateHistory("bob", { limit: 20 });
  const oldest = conversation.items[0];
  const older = oldest && (await client.privateHistory("bob", { before: oldest.id, beforeTo: oldest.to }));
  const sender: string | undefined = older?.items[0]?.from.userId;
  // @ts-expect-error: the items are private messages, which have no room
  void conversation.items[0]?.room;
  const page = await client.members("lobby", { limit: 50 });
  const total: number = page.count;
  const name: string | undefined = page.items[0]?.name;
  const rest = page.next !== undefined ? await client.members("lobby", { after: page.next }) : undefined;
  const more: string | undefined = rest?.next;
  // @ts-expect-error: `next` is the next page's cursor, a string
  const wrong: number | undefined = page.next;
  const { keys } = await client.subscribe("prices", ["AAPL"]);
  const { removed } = await client.unsubscribe("prices");
  const dice = await client.request<{ roll: number }>("roll", { sides: 20 }, { timeoutMs: 500 });
  const roll: number = dice.roll;
  // @ts-expect-error: join takes a room name
  await client.join(42);
  try {
    await client.leave("lobby");
  } catch (error) {
    const code: RoomcastError["code"] = (error as RoomcastError).code;
    const known: boolean = code === "timeout" || code === "queue_full" || code === "not_member";
    void known;
  }
  client.close();
  void flags, first, delivered, target, sender, keys, removed, roll, total, name, more, wrong;
}
