// The page's state kept in the browser (localStorage): conversations, settings and the API key.
// Whatever is read back is checked, so a damaged or foreign entry never breaks the page.

export interface Telemetry {
  /** From sending the request to the first text. */
  ttft_ms: number;
  /** Completion tokens after the first, per second of streaming. */
  tokens_per_s: number | null;
  completion_tokens: number;
  prompt_tokens: number | null;
  /** Prompt tokens whose KV came from the server's prefix cache. */
  cached_tokens: number | null;
  finish: "stop" | "length" | "stopped" | "error";
}

export interface Message {
  role: "user" | "assistant";
  content: string;
  /** Replies made in JSON mode show as a JSON code block. */
  json?: boolean;
  telemetry?: Telemetry;
  /** Why a reply ended early (an error in mid-stream). */
  error?: string;
}

export interface Conversation {
  id: string;
  title: string;
  messages: Message[];
  updated_ms: number;
}

export interface Settings {
  system: string;
  temperature: number;
  /** null: as many as the context leaves. */
  max_tokens: number | null;
  json: boolean;
}

export const DEFAULT_SETTINGS: Settings = { system: "", temperature: 0.7, max_tokens: null, json: false };

/** Longest conversation title, in characters. */
export const MAX_TITLE_CHARS = 80;

const KEYS = {
  conversations: "hearth.chat.conversations",
  current: "hearth.chat.current",
  settings: "hearth.chat.settings",
  apiKey: "hearth.chat.api-key",
};

function isMessage(m: unknown): m is Message {
  const x = m as Message;
  return (
    typeof x === "object" &&
    x !== null &&
    (x.role === "user" || x.role === "assistant") &&
    typeof x.content === "string"
  );
}

function isConversation(c: unknown): c is Conversation {
  const x = c as Conversation;
  return (
    typeof x === "object" &&
    x !== null &&
    typeof x.id === "string" &&
    typeof x.title === "string" &&
    typeof x.updated_ms === "number" &&
    Array.isArray(x.messages) &&
    x.messages.every(isMessage)
  );
}

/** A title from the first message: its first line, cut to MAX_TITLE_CHARS. */
export function titleOf(text: string): string {
  const line = text.trim().split("\n")[0]?.trim() ?? "";
  if (line === "") return "New chat";
  return line.length > MAX_TITLE_CHARS ? `${line.slice(0, MAX_TITLE_CHARS - 1)}…` : line;
}

export class ChatStore {
  conversations: Conversation[] = [];
  currentId: string | null = null;
  settings: Settings = { ...DEFAULT_SETTINGS };

  constructor(private readonly storage: Storage) {
    this.conversations = this.read(KEYS.conversations, (v): v is Conversation[] => Array.isArray(v), [])
      .filter(isConversation)
      .sort((a, b) => b.updated_ms - a.updated_ms);
    const current = storage.getItem(KEYS.current);
    this.currentId = this.conversations.some((c) => c.id === current) ? current : null;
    const s = this.read(
      KEYS.settings,
      (v): v is Partial<Settings> => typeof v === "object" && v !== null,
      {},
    );
    this.settings = {
      system: typeof s.system === "string" ? s.system : DEFAULT_SETTINGS.system,
      temperature:
        typeof s.temperature === "number" && s.temperature >= 0 && s.temperature <= 2
          ? s.temperature
          : DEFAULT_SETTINGS.temperature,
      max_tokens:
        typeof s.max_tokens === "number" && Number.isInteger(s.max_tokens) && s.max_tokens >= 1
          ? s.max_tokens
          : null,
      json: s.json === true,
    };
  }

  private read<T>(key: string, ok: (v: unknown) => v is T, fallback: T): T {
    try {
      const v: unknown = JSON.parse(this.storage.getItem(key) ?? "null");
      return ok(v) ? v : fallback;
    } catch {
      return fallback;
    }
  }

  get current(): Conversation | null {
    return this.conversations.find((c) => c.id === this.currentId) ?? null;
  }

  /** A new, empty conversation, made current (kept once it has a message). */
  create(): Conversation {
    const c: Conversation = {
      id: crypto.randomUUID(),
      title: "New chat",
      messages: [],
      updated_ms: Date.now(),
    };
    this.conversations.unshift(c);
    this.currentId = c.id;
    return c;
  }

  select(id: string): void {
    if (this.conversations.some((c) => c.id === id)) this.currentId = id;
  }

  rename(id: string, title: string): void {
    const c = this.conversations.find((x) => x.id === id);
    const t = title.trim().slice(0, MAX_TITLE_CHARS);
    if (c && t !== "") c.title = t;
  }

  remove(id: string): void {
    this.conversations = this.conversations.filter((c) => c.id !== id);
    if (this.currentId === id) this.currentId = this.conversations[0]?.id ?? null;
  }

  touch(c: Conversation): void {
    c.updated_ms = Date.now();
    this.conversations = [c, ...this.conversations.filter((x) => x !== c)];
  }

  /** Writes everything; throws when the browser's storage is full. */
  save(): void {
    const kept = this.conversations.filter((c) => c.messages.length > 0);
    this.storage.setItem(KEYS.conversations, JSON.stringify(kept));
    if (this.currentId !== null) this.storage.setItem(KEYS.current, this.currentId);
    else this.storage.removeItem(KEYS.current);
    this.storage.setItem(KEYS.settings, JSON.stringify(this.settings));
  }

  get apiKey(): string | null {
    return this.storage.getItem(KEYS.apiKey);
  }

  set apiKey(key: string | null) {
    if (key === null) this.storage.removeItem(KEYS.apiKey);
    else this.storage.setItem(KEYS.apiKey, key);
  }
}
