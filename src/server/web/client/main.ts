/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// The chat page served at `/`: wires the static markup of index.html to the server's API.
import { ApiError, fetchInfo, type ServerInfo, streamChat, type Usage } from "./api.ts";
import { codeBlock, el, renderMarkdown } from "./render.ts";
import { ChatStore, type Conversation, type Message, type Telemetry, titleOf } from "./store.ts";
import { describeTelemetry, ReplyClock } from "./telemetry.ts";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  newChat: $<HTMLButtonElement>("new-chat"),
  list: $<HTMLUListElement>("conversations"),
  noConversations: $<HTMLParagraphElement>("no-conversations"),
  title: $<HTMLHeadingElement>("chat-title"),
  modelInfo: $<HTMLParagraphElement>("model-info"),
  openSettings: $<HTMLButtonElement>("open-settings"),
  log: $<HTMLElement>("log"),
  empty: $<HTMLDivElement>("empty"),
  alert: $<HTMLDivElement>("alert"),
  composer: $<HTMLFormElement>("composer"),
  message: $<HTMLTextAreaElement>("message"),
  send: $<HTMLButtonElement>("send"),
  stop: $<HTMLButtonElement>("stop"),
  settings: $<HTMLDialogElement>("settings"),
  settingsForm: $<HTMLFormElement>("settings-form"),
  settingsCancel: $<HTMLButtonElement>("settings-cancel"),
  system: $<HTMLTextAreaElement>("system"),
  temperature: $<HTMLInputElement>("temperature"),
  maxTokens: $<HTMLInputElement>("max-tokens"),
  json: $<HTMLInputElement>("json-mode"),
  keyDialog: $<HTMLDialogElement>("key-dialog"),
  keyForm: $<HTMLFormElement>("key-form"),
  keyWhy: $<HTMLParagraphElement>("key-why"),
  keyInput: $<HTMLInputElement>("api-key"),
};

const store = new ChatStore(localStorage);
let info: ServerInfo | null = null;
/** The reply being streamed, if any. */
let streaming: AbortController | null = null;

function save(): void {
  try {
    store.save();
  } catch (err) {
    showAlert(`The conversation could not be saved in this browser: ${(err as Error).message}`);
  }
}

function showAlert(text: string, action?: { label: string; run: () => void }): void {
  const close = el("button", { type: "button", class: "ghost", "aria-label": "Dismiss" }, "✕");
  close.addEventListener("click", hideAlert);
  const parts: Node[] = [el("p", { class: "alert-text" }, text)];
  if (action) {
    const b = el("button", { type: "button" }, action.label);
    b.addEventListener("click", () => {
      hideAlert();
      action.run();
    });
    parts.push(b);
  }
  ui.alert.replaceChildren(...parts, close);
  ui.alert.hidden = false;
}

function hideAlert(): void {
  ui.alert.hidden = true;
  ui.alert.replaceChildren();
}

// ---- conversations in the sidebar ----

function renderConversations(): void {
  const shown = store.conversations.filter((c) => c.messages.length > 0 || c.id === store.currentId);
  ui.noConversations.hidden = shown.length > 0;
  ui.list.replaceChildren(...shown.map(conversationItem));
}

function conversationItem(c: Conversation): HTMLLIElement {
  const current = c.id === store.currentId;
  const open = el("button", { type: "button", class: "open", title: c.title }, c.title);
  if (current) open.setAttribute("aria-current", "true");
  open.addEventListener("click", () => {
    if (streaming) return;
    store.select(c.id);
    save();
    renderAll();
    ui.message.focus();
  });
  const rename = el(
    "button",
    { type: "button", class: "ghost icon", "aria-label": `Rename “${c.title}”`, title: "Rename" },
    "✎",
  );
  rename.addEventListener("click", () => startRename(item, c));
  const remove = el(
    "button",
    { type: "button", class: "ghost icon", "aria-label": `Delete “${c.title}”`, title: "Delete" },
    "✕",
  );
  remove.addEventListener("click", () => {
    if (streaming && current) return;
    if (!confirm(`Delete the conversation “${c.title}”?`)) return;
    store.remove(c.id);
    save();
    renderAll();
    ui.newChat.focus();
  });
  const item = el("li", current ? { class: "current" } : {}, open, rename, remove);
  return item;
}

function startRename(item: HTMLLIElement, c: Conversation): void {
  const input = el("input", {
    type: "text",
    value: c.title,
    "aria-label": `New name for “${c.title}”`,
    maxlength: "80",
  });
  let done = false;
  const finish = (keep: boolean) => {
    if (done) return;
    done = true;
    if (keep) {
      store.rename(c.id, input.value);
      save();
    }
    renderAll();
    (ui.list.querySelector(`li.current .open`) as HTMLElement | null)?.focus();
  };
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      finish(true);
    } else if (e.key === "Escape") {
      e.preventDefault();
      finish(false);
    }
  });
  input.addEventListener("blur", () => finish(true));
  item.replaceChildren(input);
  input.focus();
  input.select();
}

// ---- the messages ----

function messageBody(m: Message): HTMLElement {
  const body = el("div", { class: "body" });
  if (m.role === "user") body.append(el("p", { class: "plain" }, m.content));
  else if (m.json) body.append(codeBlock(m.content, "json"));
  else renderMarkdown(body, m.content);
  return body;
}

function telemetryNode(t: Telemetry): HTMLElement {
  return el("p", { class: "telemetry" }, describeTelemetry(t).join(" · "));
}

function messageNode(m: Message): HTMLElement {
  const node = el(
    "article",
    { class: `message ${m.role}`, "aria-label": m.role === "user" ? "You" : "Model" },
    el("p", { class: "role" }, m.role === "user" ? "You" : "Model"),
    messageBody(m),
  );
  if (m.error) node.append(el("p", { class: "reply-error" }, m.error));
  if (m.telemetry) node.append(telemetryNode(m.telemetry));
  return node;
}

function renderLog(): void {
  const c = store.current;
  const messages = c?.messages ?? [];
  ui.title.textContent = c?.title ?? "New chat";
  document.title = c && c.messages.length > 0 ? `${c.title} · hearth` : "hearth chat";
  ui.log.replaceChildren(...(messages.length === 0 ? [ui.empty] : messages.map(messageNode)));
}

function renderAll(): void {
  renderConversations();
  renderLog();
}

const nearBottom = () => ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 80;

// ---- sending ----

function setStreaming(on: AbortController | null): void {
  streaming = on;
  ui.send.hidden = on !== null;
  ui.stop.hidden = on === null;
  ui.log.setAttribute("aria-busy", on === null ? "false" : "true");
  ui.newChat.disabled = on !== null;
}

function requestBody(c: Conversation): Record<string, unknown> {
  const s = store.settings;
  const messages: Array<{ role: string; content: string }> = [];
  if (s.system.trim() !== "") messages.push({ role: "system", content: s.system });
  for (const m of c.messages) if (m.content !== "") messages.push({ role: m.role, content: m.content });
  return {
    ...(info ? { model: info.model } : {}),
    messages,
    temperature: s.temperature,
    ...(s.max_tokens !== null ? { max_tokens: s.max_tokens } : {}),
    ...(s.json ? { response_format: { type: "json_object" } } : {}),
  };
}

/** What an error means for the person at the page. */
function explain(err: ApiError): string {
  if (err.status === 429)
    return `The server is busy: every slot is taken (${err.message}). Your message is back in the box; send it again in ${err.retryAfterS ?? 1} s or so.`;
  if (err.code === "context_length_exceeded") {
    const ctx = info ? ` of ${info.context_tokens.toLocaleString("en")} tokens` : "";
    if (err.param === "max_tokens" || err.param === "max_completion_tokens")
      return `Max tokens (${store.settings.max_tokens}) does not fit in what this conversation leaves of the model's context${ctx}. Lower it in Settings, or clear it to use whatever is left.`;
    return `This conversation no longer fits in the model's context${ctx}. Start a new chat (the model cannot see more than that).`;
  }
  return `The server answered ${err.status}: ${err.message}`;
}

async function send(text: string): Promise<void> {
  if (streaming || text.trim() === "") return;
  hideAlert();
  const c = store.current ?? store.create();
  const title = c.title;
  if (c.messages.length === 0) c.title = titleOf(text);
  c.messages.push({ role: "user", content: text });
  const body = requestBody(c);
  const reply: Message = { role: "assistant", content: "", ...(store.settings.json ? { json: true } : {}) };
  c.messages.push(reply);
  store.touch(c);
  ui.message.value = "";
  save();
  renderAll();
  const node = ui.log.lastElementChild as HTMLElement;
  node.classList.add("streaming");
  ui.log.scrollTop = ui.log.scrollHeight;

  const controller = new AbortController();
  setStreaming(controller);
  const clock = new ReplyClock(performance.now());
  let finish: Telemetry["finish"] = "stop";
  let usage: Usage | null = null;
  let drawing = false;
  let current = node.querySelector(".body") as HTMLElement;
  const redraw = () => {
    drawing = false;
    const follow = nearBottom();
    const next = messageBody(reply);
    current.replaceWith(next);
    current = next;
    if (follow) ui.log.scrollTop = ui.log.scrollHeight;
  };
  try {
    await streamChat(body, store.apiKey, controller.signal, {
      onText(piece) {
        clock.text(performance.now());
        reply.content += piece;
        if (!drawing) {
          drawing = true;
          requestAnimationFrame(redraw);
        }
      },
      onFinish(reason) {
        finish = reason === "length" ? "length" : "stop";
      },
      onUsage(u) {
        usage = u;
      },
    });
  } catch (err) {
    if (controller.signal.aborted) finish = "stopped";
    else if (!clock.started) {
      // Nothing came back: take the message back into the box to send again.
      c.messages.splice(c.messages.length - 2, 2);
      c.title = title;
      ui.message.value = text;
      setStreaming(null);
      save();
      renderAll();
      if (err instanceof ApiError && err.status === 401) {
        await askKey("The API key was refused. Enter the right one.");
        return;
      }
      const msg =
        err instanceof ApiError ? explain(err) : `Cannot reach the server: ${(err as Error).message}`;
      const contextFull = err instanceof ApiError && err.code === "context_length_exceeded";
      showAlert(msg, contextFull ? { label: "New chat", run: newChat } : undefined);
      ui.message.focus();
      return;
    } else {
      finish = "error";
      reply.error = err instanceof ApiError ? explain(err) : `The reply broke off: ${(err as Error).message}`;
    }
  }
  setStreaming(null);
  if (reply.content === "" && finish === "stopped") c.messages.pop();
  else reply.telemetry = clock.telemetry(finish, usage);
  save();
  renderAll();
  ui.log.scrollTop = ui.log.scrollHeight;
  ui.message.focus();
}

function stop(): void {
  streaming?.abort();
}

function newChat(): void {
  if (streaming) return;
  const c = store.current;
  if (!c || c.messages.length > 0) store.create();
  save();
  renderAll();
  ui.message.focus();
}

// ---- settings and the API key ----

function openSettings(): void {
  const s = store.settings;
  ui.system.value = s.system;
  ui.temperature.value = String(s.temperature);
  ui.maxTokens.value = s.max_tokens === null ? "" : String(s.max_tokens);
  if (info) ui.maxTokens.max = String(info.context_tokens);
  ui.json.checked = s.json;
  ui.settings.showModal();
}

function saveSettings(): void {
  const temperature = Number(ui.temperature.value);
  const max = ui.maxTokens.value.trim();
  store.settings = {
    system: ui.system.value,
    temperature: Number.isFinite(temperature) ? Math.min(2, Math.max(0, temperature)) : 0.7,
    max_tokens: max === "" ? null : Math.max(1, Math.floor(Number(max)) || 1),
    json: ui.json.checked,
  };
  save();
}

let keyWaiters: Array<() => void> = [];

/** Asks for the API key (once per refusal) and reconnects with it. */
function askKey(why: string): Promise<void> {
  ui.keyWhy.textContent = why;
  ui.keyInput.value = "";
  if (!ui.keyDialog.open) ui.keyDialog.showModal();
  ui.keyInput.focus();
  return new Promise((resolve) => keyWaiters.push(resolve));
}

async function connect(): Promise<void> {
  try {
    info = await fetchInfo(store.apiKey);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      const had = store.apiKey !== null;
      store.apiKey = null;
      await askKey(
        had
          ? "The API key was refused. Enter the right one."
          : "This server needs an API key. It is kept in this browser.",
      );
      return;
    }
    ui.modelInfo.textContent = "Server unreachable";
    showAlert(`Cannot reach the server: ${err instanceof ApiError ? err.message : (err as Error).message}`, {
      label: "Retry",
      run: () => void connect(),
    });
    return;
  }
  ui.modelInfo.replaceChildren(
    el("span", { class: "model-name" }, info.model),
    el("span", { class: "muted" }, ` · context ${info.context_tokens.toLocaleString("en")} tokens`),
  );
}

// ---- events ----

ui.composer.addEventListener("submit", (e) => {
  e.preventDefault();
  void send(ui.message.value);
});
ui.message.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    void send(ui.message.value);
  }
});
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && !e.defaultPrevented && streaming && !ui.settings.open && !ui.keyDialog.open) {
    e.preventDefault();
    stop();
  }
});
ui.stop.addEventListener("click", stop);
ui.newChat.addEventListener("click", newChat);
ui.openSettings.addEventListener("click", openSettings);
ui.settingsCancel.addEventListener("click", () => ui.settings.close());
ui.settingsForm.addEventListener("submit", (e) => {
  if (!ui.settingsForm.checkValidity()) {
    e.preventDefault();
    return;
  }
  saveSettings();
});
ui.keyForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const key = ui.keyInput.value.trim();
  if (key === "") return;
  store.apiKey = key;
  ui.keyDialog.close();
  const waiters = keyWaiters;
  keyWaiters = [];
  void connect().then(() => {
    for (const w of waiters) w();
  });
});
// The key dialog cannot be dismissed without a key: nothing works without one.
ui.keyDialog.addEventListener("cancel", (e) => e.preventDefault());

renderAll();
void connect();
ui.message.focus();
