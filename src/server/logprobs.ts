// Log probabilities in the API's shapes: chat's `{ content: [...] }` (bytes and alternatives per
// token) and the legacy `{ tokens, token_logprobs, top_logprobs, text_offset }`, each token placed
// in the returned text (echoed prompt included).
import type { EngineEvent } from "../engine/request.ts";
import type { TokenLogprob } from "../sampling/index.ts";
import type { StreamDecoder, Tokenizer } from "../tokenizer/index.ts";
import type { ChatLogprobsBody, CompletionLogprobsBody } from "./schemas.ts";

export type Endpoint = "chat" | "completion";

/**
 * A token's score and where its text starts in the request's text; the echoed prompt's first
 * token has no score (null), as in OpenAI's API.
 */
export type Scored = { id: number; logprob: number | null; top: TokenLogprob["top"] | null; offset: number };

/**
 * The prompt a completion echoes before its text, control tokens shown by name: a token-id
 * prompt decoded, a text prompt as sent. `hidden` leading ids take no room in it (the BOS the
 * tokenizer adds to a text prompt).
 */
export type Echo = { text: string; ids: readonly number[]; hidden: number };

/** Scores of one choice's tokens, in order, each placed in the choice's text. */
export interface ScoreList {
  /** The scores an engine event carries: the echoed prompt's (once), then its tokens'. */
  record(ev: EngineEvent): void;
  /** The scores recorded since the last take. */
  take(): Scored[];
  /** Drops the tokens that start at or past `textLength` (text a stop string cut away). */
  keep(textLength: number): void;
}

/** An object whose keys keep their order in JSON (JavaScript moves integer-like keys first). */
export class OrderedEntries {
  constructor(readonly entries: Array<[string, number]>) {}
}

/** JSON text of `value`, writing OrderedEntries in their own order (top_logprobs "7" before "1"). */
export function orderedJson(value: unknown): string {
  const parts: string[] = [];
  const mark = `\u0000${crypto.randomUUID()}:`;
  const text = JSON.stringify(value, (_key, v) => {
    if (!(v instanceof OrderedEntries)) return v;
    parts.push(`{${v.entries.map(([k, x]) => `${JSON.stringify(k)}:${JSON.stringify(x)}`).join(",")}}`);
    return `${mark}${parts.length - 1}`;
  });
  if (parts.length === 0) return text;
  // Split at the quoted mark (unique per call): each piece after the first starts `<i>"`.
  const pieces = text.split(JSON.stringify(mark).slice(0, -1));
  return pieces
    .map((piece, k) => {
      if (k === 0) return piece;
      const end = piece.indexOf('"');
      return (parts[Number(piece.slice(0, end))] as string) + piece.slice(end + 1);
    })
    .join("");
}

/** Turns the engine's token scores into the API's logprobs objects for one tokenizer. */
export class LogprobFormat {
  private readonly utf8 = new TextDecoder();
  private readonly strictUtf8 = new TextDecoder("utf-8", { fatal: true });

  constructor(private readonly tokenizer: Tokenizer) {}

  /** A token as text (control tokens by name; a partial UTF-8 character shows as U+FFFD). */
  private tokenText(id: number): string {
    return this.utf8.decode(this.tokenizer.tokenBytes(id, true));
  }

  private tokenBytes(id: number): number[] {
    return Array.from(this.tokenizer.tokenBytes(id, true));
  }

  /**
   * A token as the legacy endpoint lists it: its text, or `bytes:\xNN...` when its bytes are not
   * whole UTF-8 characters (as OpenAI writes them), so that no two tokens share a key.
   */
  private legacyTokenText(id: number): string {
    const bytes = this.tokenizer.tokenBytes(id, true);
    try {
      return this.strictUtf8.decode(bytes);
    } catch {
      return `bytes:${Array.from(bytes, (b) => `\\x${b.toString(16).padStart(2, "0")}`).join("")}`;
    }
  }

  /**
   * Scores of a choice's tokens in order, each with where its text starts in the returned text
   * (UTF-16 units; a stream decoder over the tokens, so a character split over several tokens is
   * counted once).
   */
  scores(echo: Echo | null): ScoreList {
    const tokenizer = this.tokenizer;
    const decoder = tokenizer.streamDecoder();
    let at = 0;
    const list: Scored[] = [];
    const add = (lps: Array<Omit<Scored, "offset">>, from: StreamDecoder, hidden = 0) => {
      for (const [i, lp] of lps.entries()) {
        list.push({ ...lp, offset: at });
        const text = from.push(lp.id);
        if (i >= hidden) at += text.length;
      }
    };
    return {
      record(ev) {
        if (ev.type === "error") return;
        if (echo && ev.promptLogprobs) {
          // Offsets follow echo.text: control tokens by name, an added BOS in no room. The
          // echoed prompt's first token has no score.
          const prompt = tokenizer.streamDecoder({ special: true });
          add(
            [{ id: echo.ids[0] as number, logprob: null, top: null }, ...ev.promptLogprobs],
            prompt,
            echo.hidden,
          );
          at += prompt.flush().length;
        }
        if (ev.logprobs) add(ev.logprobs, decoder);
      },
      take: () => list.splice(0),
      keep(textLength) {
        const cut = list.findIndex((lp) => lp.offset >= textLength);
        if (cut >= 0) list.length = cut;
      },
    };
  }

  /** Chat's `logprobs`: each token with its bytes and its alternatives. */
  chat(lps: Scored[]): ChatLogprobsBody {
    return {
      content: lps.map((lp) => ({
        token: this.tokenText(lp.id),
        logprob: lp.logprob,
        bytes: this.tokenBytes(lp.id),
        top_logprobs: (lp.top ?? []).map((t) => ({
          token: this.tokenText(t.id),
          logprob: t.logprob,
          bytes: this.tokenBytes(t.id),
        })),
      })),
      refusal: null,
    };
  }

  /** The legacy endpoint's `logprobs` (its top_logprobs are OrderedEntries: write with orderedJson). */
  legacy(lps: Scored[]): CompletionLogprobsBody {
    return {
      tokens: lps.map((lp) => this.legacyTokenText(lp.id)),
      token_logprobs: lps.map((lp) => lp.logprob),
      top_logprobs: lps.map((lp) => (lp.top === null ? null : new OrderedEntries(this.legacyTop(lp)))),
      text_offset: lps.map((lp) => lp.offset),
    };
  }

  /**
   * A token's legacy `top_logprobs` entries: the top ones and, as OpenAI's legacy API always
   * adds it, the token itself where it is not among them (so up to `logprobs` + 1 entries), in
   * order of log-probability.
   */
  private legacyTop(lp: Scored): Array<[string, number]> {
    const top = lp.top ?? [];
    const entries = top.map((t): [string, number] => [this.legacyTokenText(t.id), t.logprob]);
    if (lp.logprob === null || top.some((t) => t.id === lp.id)) return entries;
    const at = top.findIndex((t) => t.logprob < (lp.logprob as number));
    entries.splice(at < 0 ? entries.length : at, 0, [this.legacyTokenText(lp.id), lp.logprob]);
    return entries;
  }
}
